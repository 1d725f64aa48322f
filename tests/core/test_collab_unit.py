"""The pure parts of collaborators and rotation: expiry parsing, sshd's expiry form, what a
container's authorized_keys holds for a grant (one renderer, at launch and after), how a rotation
result reads, and where an export's files are named on the person's machine."""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest

from ptdesk.core.access import authorized_keys
from ptdesk.core.base import keys
from ptdesk.core.base.models import LaunchSpec, Limits
from ptdesk.core.base.people_models import ContainerRotation, RotationResult
from ptdesk.core.collaborators import export, grants
from ptdesk.core.kinds.ssh import SSH
from ptdesk.core.store.state import CollaboratorRecord, ExperimentRecord
from ptdesk.core.workstation import Workstation
from ptdesk.errors import InvalidInput

NOW = 1_800_000_000.0
# Every key line: a terminal and forwards to the container's own loopback, nothing else.
OPTS = 'restrict,pty,port-forwarding,permitopen="127.0.0.1:*",permitopen="localhost:*",permitopen="[::1]:*"'


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 12 * 3600), ("2w", 14 * 86400),
                                               ("90m", 90 * 60), (" 7D ", 7 * 86400),
                                               ("1.5d", 1.5 * 86400), ("90s", 90)])
def test_durations_count_from_now(text: str, seconds: int) -> None:
    assert grants.parse_expires(text, now=NOW) == NOW + seconds


def test_a_date_means_midnight_utc_and_none_means_never() -> None:
    assert grants.parse_expires("2027-03-01", now=NOW) == calendar.timegm((2027, 3, 1, 0, 0, 0))
    assert grants.parse_expires(None) is None and grants.parse_expires("") is None


@pytest.mark.parametrize("text", ["soon", "30", "-3d", "0d", "0.0h", "2020-01-01", "2027-13-01", "30y", "1.d"])
def test_bad_or_past_expiry_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        grants.parse_expires(text, now=NOW)


def test_a_malformed_expiry_names_every_accepted_form() -> None:
    with pytest.raises(InvalidInput) as caught:
        grants.parse_expires("soon", now=NOW)
    assert "is not an expiry" in caught.value.message
    assert caught.value.hint and all(form in caught.value.hint for form in ("s, m, h, d or w", "1.5h", "YYYY-MM-DD"))


def test_sshd_expiry_is_utc_with_the_z_suffix() -> None:
    when = calendar.timegm((2027, 3, 1, 13, 45, 30))
    assert authorized_keys.sshd_expiry(when) == "20270301134530Z"  # to the second: short expiries stay valid
    assert authorized_keys.sshd_expiry(None) is None


@pytest.mark.parametrize("name", ["Alice", "has space", "-x", "a/b", "x" * 33, ""])
def test_collaborator_names_are_unix_style(name: str) -> None:
    with pytest.raises(InvalidInput):
        grants.validate_name(name)


def _person(name: str, expires: float | None = None, rotating: bool = False) -> CollaboratorRecord:
    current = keys.generate(f"{name}@ptdesk")
    previous = keys.generate(f"{name}@old") if rotating else None
    return CollaboratorRecord(name=name, public_key=current.public_line, fingerprint=current.fingerprint,
                              created=NOW, expires=expires,
                              previous_public_key=previous.public_line if previous else None,
                              previous_fingerprint=previous.fingerprint if previous else None)


def test_installed_fingerprints_choose_the_lines() -> None:
    ray = _person("ray", rotating=True)
    assert ray.previous_fingerprint and ray.previous_public_key
    both = (ray.previous_fingerprint, ray.fingerprint)
    assert grants.key_lines(ray, both) == [ray.previous_public_key, ray.public_key]
    assert grants.key_lines(ray, (ray.fingerprint,)) == [ray.public_key]
    # A fingerprint of a key rotated away long ago renders to nothing, never to a stale line.
    assert grants.key_lines(ray, ("SHA256:forgotten",)) == []


def test_rendered_file_has_owner_first_and_each_persons_expiry() -> None:
    owner = keys.generate("root@ptdesk").public_line
    brought = keys.generate("laptop").public_line
    ann = _person("ann", expires=calendar.timegm((2027, 1, 2, 3, 4, 0)))
    bob = _person("bob")
    granted = grants.granted_lines([(ann, (ann.fingerprint,)), (bob, (bob.fingerprint,))])
    text = authorized_keys.render_authorized_keys(owner, (brought,), granted)
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 4
    assert lines[0] == f"{OPTS} {owner}"
    assert lines[1] == f"{OPTS} {brought}"
    ann_key, bob_key = (" ".join(p.public_key.split()[:2]) for p in (ann, bob))
    assert lines[2] == f'{OPTS},expiry-time="20270102030400Z" {ann_key} ptdesk-collaborator:ann'
    assert lines[3] == f"{OPTS} {bob_key} ptdesk-collaborator:bob"
    assert [authorized_keys.collaborator_of(line) for line in lines] == [None, None, "ann", "bob"]
    assert authorized_keys.expiry_of(lines[2].split()[0]) == ann.expires
    # Nothing granted, nothing brought: only the owner.
    assert authorized_keys.render_authorized_keys(owner) == f"{OPTS} {owner}\n"


def test_the_launch_renders_what_collab_renders_before_any_grant(ws: Workstation, tmp_path: Path) -> None:
    """The first file (launch plan: config + spec only) equals the one every grant change re-renders."""
    brought = keys.generate("alice@laptop").public_line
    spec = LaunchSpec(kind="ssh", name="box", owner="alice", image="ptdesk/ssh:latest", gpus="none",
                      workspace=tmp_path, limits=Limits(), extra_keys=(brought,))
    plan = SSH.plan(ws.config, spec)
    at_launch = {f.name: f.data for folder, files in plan.files if folder == authorized_keys.AUTHORIZED_KEYS_DIR
                 for f in files}[authorized_keys.CONTAINER_USER].decode()
    with ws.store.tx() as conn:
        ws.store.insert_experiment(conn, ExperimentRecord(
            name="box", kind="ssh", owner="alice", image=spec.image, status="running", created=NOW,
            host_public_key=plan.host_public_key, extra_keys=spec.extra_keys))
    assert grants.authorized_keys_text(ws, "box") == at_launch
    _, owner_public = authorized_keys.owner_key(ws.config, "alice")
    assert at_launch == f"{OPTS} {owner_public}\n{OPTS} {brought}\n"


def test_rotation_result_names_what_is_unfinished() -> None:
    result = RotationResult("ray", "SHA256:old", "SHA256:new", "/k/id_ed25519", (
        ContainerRotation("a", "rotated", True, "ok"),
        ContainerRotation("b", "pending", False, "paused"),
        ContainerRotation("c", "failed", False, "gone"),
    ))
    assert [c.name for c in result.unfinished] == ["b", "c"]
    data = result.to_json()
    assert {"name", "old_fingerprint", "fingerprint", "identity_file", "containers"} <= set(data)
    assert data["containers"][1] == {"name": "b", "status": "pending", "verified": False, "detail": "paused"}


def test_an_export_names_its_files_where_the_person_keeps_them() -> None:
    assert export.destination("bob") == "~/.ssh/ptdesk-bob"
    assert export.destination("bob", "/home/bob/keys/") == "/home/bob/keys"
    assert export.destination("bob", "~bob/my keys") == "~bob/my keys"


@pytest.mark.parametrize("dest", ["for-bob", "./for-bob", '/tmp/a"b', "~/50%", "~/a\nb"])
def test_an_export_destination_ssh_could_not_find_is_refused(dest: str) -> None:
    with pytest.raises(InvalidInput):
        export.destination("bob", dest)
