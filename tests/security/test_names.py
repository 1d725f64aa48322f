"""Names match in full: `$` in re.match also matches before a trailing newline, so "eve\n" used
to pass every name check and broke the exported ssh_config and authorized_keys lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptdesk.core.base.names import validate_name, validate_owner
from ptdesk.errors import InvalidInput
from tests.support.helpers import run_cli


def test_collab_add_refuses_a_name_with_a_trailing_newline(ptdesk_env: dict[str, str]) -> None:
    rc, out, err = run_cli(["collab", "add", "eve\n"], ptdesk_env)
    assert rc == 2, (rc, out, err)
    assert "not a valid collaborator name" in err and "Traceback" not in err
    # Nothing was made for her: no key folder, no record.
    assert not list((Path(ptdesk_env["PTDESK_HOME"]) / "keys").glob("**/eve*"))
    rc, out, _ = run_cli(["collab", "ls", "--json"], ptdesk_env)
    assert rc == 0 and "eve" not in out


@pytest.mark.parametrize("check", [validate_name, validate_owner])
def test_experiment_and_owner_names_refuse_a_trailing_newline(check) -> None:
    with pytest.raises(InvalidInput):
        check("alice\n")
    assert check("alice") == "alice"


# Patterns used with match on purpose: they read the start of a text (an ssh_config block, a
# driver version), they check no input.
PREFIX_PARSERS = {"core/access/ssh_include.py": "_BLOCK.match(", "core/gpu/driver_compat.py": r're.match(r"^\s*(\d+'}


def test_no_validation_pattern_is_used_with_match() -> None:
    """Every pattern that checks input is used with fullmatch (grep the tree, as the review did)."""
    root = Path(__file__).resolve().parents[2] / "ptdesk"
    offenders = [f"{path.relative_to(root)}:{n}" for path in root.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if ".match(" in line and "fnmatch" not in line
                 and PREFIX_PARSERS.get(str(path.relative_to(root)), "\0") not in line]
    assert offenders == []


def test_a_jump_host_with_a_newline_is_refused() -> None:
    from ptdesk.core.collaborators.export import jump_host

    with pytest.raises(InvalidInput):
        jump_host("alice@bastion\nProxyCommand sh -c evil")
    assert jump_host("alice@bastion:2222") == "alice@bastion:2222"
