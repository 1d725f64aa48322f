"""Every mistake a person can make when launching: one clear line, a non-zero exit, no traceback,
and nothing left behind (no container of the instance, no record, no experiments/<name> folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ptdesk.config import load_config
from ptdesk.core.engine.client import Engine
from ptdesk.core.experiments.spec import make_spec
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError
from tests.support.helpers import SSH_IMAGE

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py


@pytest.mark.parametrize("name", ["Upper", "has space", "-dash-first", "a/b", "x" * 42, "semi;colon"])
def test_invalid_name(cli: Ptdesk, engine: Engine, name: str) -> None:
    lines = cli.fails("new", "ssh", "--name", name, "--json")
    assert "not a valid experiment name" in lines[0]
    cli.assert_nothing_left(engine, name)


def test_taken_name_leaves_the_existing_experiment_alone(cli: Ptdesk, engine: Engine) -> None:
    first = cli.new("ssh", "--name", "taken")
    for kind in ("ssh", "jupyter"):
        lines = cli.fails("new", kind, "--name", "taken", "--json")
        assert "'taken' already exists" in lines[0]
    # Refusing the second launch must not roll back the first one.
    assert [c["Id"] for c in engine.api.containers(all=True, filters={"label": f"ptdesk.instance={cli.instance}"})] \
        == [first["id"]]
    assert cli.listed(all=False)["taken"] == first
    assert (cli.experiment_folder("taken") / "known_hosts").exists()


def test_unknown_image_says_how_to_build_it(cli: Ptdesk, engine: Engine) -> None:
    lines = cli.fails("new", "ssh", "--name", "noimage", "--image", "ptdesk/nope:missing", "--json")
    assert "ptdesk/nope:missing" in lines[0]
    assert "docker pull" in lines[1] and "ptdesk images build ssh" in lines[1]
    cli.assert_nothing_left(engine, "noimage")


def test_gpu_that_does_not_exist(cli: Ptdesk, engine: Engine) -> None:
    lines = cli.fails("new", "ssh", "--name", "gpu0", "--gpus", "0", "--json")
    assert "GPU" in lines[0]
    assert "--gpus none" in lines[1]
    cli.assert_nothing_left(engine, "gpu0")


@pytest.mark.parametrize("which", ["home-parent", "ptdesk-home", "keys", "root", "docker-socket"])
def test_a_workspace_that_would_hand_over_secrets_or_the_machine_is_refused(
        cli: Ptdesk, engine: Engine, which: str) -> None:
    """Code in the container reads all of /workspace: never PTDESK_HOME's keys, `/` or the socket."""
    folder = {"home-parent": cli.home.parent, "ptdesk-home": cli.home, "keys": cli.home / "keys",
              "root": Path("/"), "docker-socket": Path("/var/run")}[which]
    folder.mkdir(parents=True, exist_ok=True)
    lines = cli.fails("new", "jupyter", "--name", "leak", "--workspace", folder, "--json")
    assert lines[0].startswith(f"ptdesk: {folder} cannot be a workspace")
    cli.assert_nothing_left(engine, "leak")


def test_a_project_folder_next_to_ptdesk_home_is_fine(cli: Ptdesk, engine: Engine) -> None:
    from ptdesk.config import load_config
    from ptdesk.core.experiments.spec import check_workspace

    project = cli.home.parent / "project"
    project.mkdir(exist_ok=True)
    check_workspace(load_config({"PTDESK_HOME": str(cli.home)}), project)  # does not raise
    (cli.home / "workspaces" / "mine").mkdir(parents=True)  # a workspace is an existing folder
    check_workspace(load_config({"PTDESK_HOME": str(cli.home)}), cli.home / "workspaces" / "mine")


def test_missing_workspace_folder(cli: Ptdesk, engine: Engine, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    lines = cli.fails("new", "ssh", "--name", "nows", "--workspace", missing, "--json")
    assert str(missing) in lines[0] and "does not exist" in lines[0]
    cli.assert_nothing_left(engine, "nows")
    assert not missing.exists()


@pytest.mark.parametrize(("content", "expected"), [
    ("ssh-ed25519 not*base64 me@laptop\n", "malformed"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBSfTinDPLIi6NUqimhhHHZlWTpBObBo me@laptop\n", "malformed"),
    ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 me@laptop\n", "Ed25519 keys only"),
    ("", "exactly one key line"),
], ids=["bad-base64", "truncated", "rsa", "empty"])
def test_malformed_public_key(cli: Ptdesk, engine: Engine, tmp_path: Path, content: str, expected: str) -> None:
    pub = tmp_path / "mine.pub"
    pub.write_text(content)
    lines = cli.fails("new", "ssh", "--name", "badkey", "--pubkey", pub, "--json")
    assert expected in lines[0]
    cli.assert_nothing_left(engine, "badkey")


def test_private_key_given_as_public_key_is_refused_without_echoing_it(
        cli: Ptdesk, engine: Engine, keygen: Callable[[str], Path]) -> None:
    private = keygen("oops")
    secret_line = private.read_text().splitlines()[1]
    rc, out, err = cli.run("new", "ssh", "--name", "oops", "--pubkey", private, "--json")
    assert rc != 0 and "Traceback" not in err
    assert secret_line not in out + err
    cli.assert_nothing_left(engine, "oops")


def test_missing_public_key_file(cli: Ptdesk, engine: Engine, tmp_path: Path) -> None:
    lines = cli.fails("new", "ssh", "--name", "nokey", "--pubkey", tmp_path / "absent.pub", "--json")
    assert "absent.pub" in lines[0]
    cli.assert_nothing_left(engine, "nokey")


def test_more_cpus_than_the_machine_has(cli: Ptdesk, engine: Engine) -> None:
    too_many = (os.cpu_count() or 1) + 1
    lines = cli.fails("new", "ssh", "--name", "greedy", "--cpus", too_many, "--json")
    assert f"only {os.cpu_count()} CPUs" in lines[0]
    cli.assert_nothing_left(engine, "greedy")


def test_memory_that_is_not_a_size(cli: Ptdesk, engine: Engine) -> None:
    lines = cli.fails("new", "ssh", "--name", "mem", "--memory", "lots", "--json")
    assert "'lots' is not a size" in lines[0]
    cli.assert_nothing_left(engine, "mem")


@pytest.mark.parametrize("args", [["--name", "down"], []], ids=["named", "default-name"])
def test_engine_down(cli: Ptdesk, engine: Engine, args: list[str]) -> None:
    rc, _, err = cli.run("new", "ssh", *args, "--json", extra_env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert rc == 3
    lines = cli.fails("new", "ssh", *args, "--json", extra_env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert "Docker engine at unix:///nonexistent.sock is not reachable" in lines[0]
    assert "Start the Docker engine" in lines[1]
    cli.assert_nothing_left(engine, "down")


def test_a_service_that_never_becomes_ready_is_rolled_back(cli: Ptdesk, engine: Engine) -> None:
    # The SSH image run as a Jupyter experiment: it exits at once (no host key was placed).
    lines = cli.fails("new", "jupyter", "--name", "wrongimage", "--image", SSH_IMAGE, "--json")
    assert "stopped" in lines[0]
    # The container is gone with the rollback, so the error itself says what it printed.
    assert "code 64" in lines[1] and "no host key was placed" in lines[1]
    cli.assert_nothing_left(engine, "wrongimage")


@pytest.mark.parametrize("cpus", ["nan", "inf", "-inf", "0.001"])
def test_cpus_that_are_not_a_usable_share(cli: Ptdesk, engine: Engine, cpus: str) -> None:
    """Not a finite number, or below the 1 % of a CPU the kernel can enforce."""
    rc, _, _ = cli.run("new", "ssh", "--name", "nancpu", "--cpus", cpus, "--json")
    assert rc == 2
    lines = cli.fails("new", "ssh", "--name", "nancpu", "--cpus", cpus, "--json")
    assert "at least 0.01" in lines[0]
    cli.assert_nothing_left(engine, "nancpu")


def test_a_workspace_root_that_cannot_hold_folders(cli: Ptdesk, engine: Engine, tmp_path: Path) -> None:
    """workspace_root is a regular file (as root, the stand-in for a folder this uid may not write):
    one sentence naming the folder, and the launch rolled back."""
    in_the_way = tmp_path / "not-a-folder"
    in_the_way.write_text("")
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text(f'workspace_root = "{in_the_way}"\n')
    ws = Workstation(load_config(cli.env))
    try:
        spec = make_spec(ws, "ssh", name="nowhere")
        with pytest.raises(PtdeskError) as info:  # the dashboard gets the same sentence
            ws.launch(spec)
    finally:
        ws.close()
    assert str(in_the_way / "nowhere") in info.value.message and "workspace_root" in (info.value.hint or "")
    lines = cli.fails("new", "ssh", "--name", "nowhere", "--json")
    assert str(in_the_way / "nowhere") in lines[0] and "workspace_root" in lines[1]
    cli.assert_nothing_left(engine, "nowhere")
    assert in_the_way.is_file()
