"""The CLI's front door: help, version, and `ptdesk doctor` on a real engine and with none."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptdesk import __version__
from ptdesk.core.engine.client import Engine
from ptdesk.core.environment.images import LABEL_SOURCE_HASH, CaBundle, build_context
from tests.support.helpers import BASE_IMAGE, JUPYTER_IMAGE, SSH_IMAGE, require_image, run_cli

CHECKS = {"config", "engine", "gpu-runtime", "image-ssh", "image-jupyter", "image-code", "nvml", "bind-address",
          "state", "keys", "unverified"}
NO_ENGINE = "unix:///nonexistent.sock"


def test_help_lists_the_commands() -> None:
    code, out, _ = run_cli(["--help"])
    assert code == 0
    assert "dashboard" in out
    for command in ("doctor", "images"):
        assert f"  {command} " in out
    code, out, _ = run_cli(["images", "--help"])
    assert code == 0 and "build" in out and "ls" in out


def test_version() -> None:
    code, out, _ = run_cli(["--version"])
    assert code == 0 and __version__ in out


@pytest.mark.engine
def test_doctor_json_on_a_healthy_engine(engine: Engine, ptdesk_env: dict[str, str]) -> None:
    require_image(engine, SSH_IMAGE)
    require_image(engine, JUPYTER_IMAGE)
    code, out, err = run_cli(["doctor", "--json"], ptdesk_env)
    report = json.loads(out)
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == CHECKS
    assert all(c["status"] in ("ok", "warn", "fail") and c["detail"] for c in checks.values())
    version = engine.version()
    assert report["engine"] == {"version": version["Version"], "api_version": version["ApiVersion"]}
    assert checks["engine"]["status"] == "ok"
    assert checks["image-ssh"]["status"] in ("ok", "warn") and checks["image-jupyter"]["status"] in ("ok", "warn")
    assert checks["state"]["status"] == "ok" and checks["keys"]["status"] == "ok"
    assert ptdesk_env["PTDESK_INSTANCE"] in checks["config"]["detail"]
    runtimes = engine.info().get("Runtimes") or {}
    assert checks["gpu-runtime"]["status"] == ("ok" if "nvidia" in runtimes else "warn")
    assert report["ok"] is True and code == 0, err


def test_doctor_fails_on_a_bind_address_this_host_does_not_have(engine: Engine, ptdesk_env: dict[str, str]) -> None:
    """Every launch would fail to publish its port there: doctor must not say ptdesk can launch."""
    env = {**ptdesk_env, "PTDESK_BIND_ADDRESS": "192.0.2.1"}  # TEST-NET-1: never a local address
    code, out, _ = run_cli(["doctor", "--json"], env)
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["bind-address"]["status"] == "fail" and "192.0.2.1" in checks["bind-address"]["detail"]
    assert code != 0


@pytest.mark.engine
def test_doctor_fails_on_loose_keys_and_damaged_state(engine: Engine, ptdesk_env: dict[str, str]) -> None:
    home = Path(ptdesk_env["PTDESK_HOME"])
    keys = home / "keys"
    keys.mkdir(parents=True)
    os.chmod(keys, 0o755)
    (keys / "id_ed25519").write_text("secret")
    os.chmod(keys / "id_ed25519", 0o644)
    (keys / "id_ed25519.pub").write_text("ssh-ed25519 AAAA")  # public keys may be readable
    os.chmod(keys / "id_ed25519.pub", 0o644)
    (home / "state.db").write_bytes(b"this is not a database" * 100)
    code, out, err = run_cli(["doctor", "--json"], ptdesk_env)
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["keys"]["status"] == "fail"
    assert "keys is 0755" in checks["keys"]["detail"] and "id_ed25519 is 0644" in checks["keys"]["detail"]
    assert "id_ed25519.pub" not in checks["keys"]["detail"]
    assert checks["state"]["status"] == "fail"
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("ptdesk:")] == \
        [f"ptdesk: Cannot launch here: {checks['state']['detail']} (and 1 more failed check(s) above)."]


@pytest.fixture
def stale_image(engine: Engine) -> Iterator[str]:
    """A tiny image labelled as built by ptdesk from other Dockerfiles than today's."""
    require_image(engine, BASE_IMAGE)
    tag = f"ptdesk-test/stale:{uuid.uuid4().hex[:10]}"
    context = build_context({"Dockerfile": b"ARG BASE\nFROM ${BASE}\n"}, CaBundle(None, "none"))
    engine.build(context, tag, {"BASE": BASE_IMAGE}, lambda _line: None, labels={LABEL_SOURCE_HASH: "0" * 64})
    yield tag
    engine.api.remove_image(tag, noprune=False)


@pytest.mark.engine
def test_doctor_says_image_out_of_date_and_missing(engine: Engine, ptdesk_env: dict[str, str],
                                                   stale_image: str) -> None:
    env = {**ptdesk_env, "PTDESK_SSH_IMAGE": stale_image, "PTDESK_JUPYTER_IMAGE": f"{stale_image}-missing",
           "PTDESK_CODE_IMAGE": f"{stale_image}-code-missing"}
    code, out, err = run_cli(["doctor"], env)
    lines = [" ".join(line.split()) for line in out.splitlines()]  # column widths do not matter here
    # VS Code's image is built by the teams that use it: missing, it is a warning, not a failure.
    assert f"[WARN] image-code {stale_image}-code-missing is missing (only `ptdesk new code` needs it)" in lines
    assert f"[WARN] image-ssh {stale_image} is out of date (built from older Dockerfiles)" in lines
    assert "hint: Rebuild it with: ptdesk images build ssh" in lines
    assert f"[FAIL] image-jupyter {stale_image}-missing is missing" in lines
    assert code == 1 and "Build it with: ptdesk images build jupyter" in err


def test_doctor_with_unreachable_engine_is_one_clear_line(ptdesk_env: dict[str, str]) -> None:
    env = {**ptdesk_env, "DOCKER_HOST": NO_ENGINE}
    code, out, err = run_cli(["doctor"], env, subprocess_=True)
    assert code == 3
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert lines[0] == ("ptdesk: Cannot launch here: Connecting to Docker: the Docker engine at "
                        f"{NO_ENGINE} is not reachable.")
    assert len(lines) == 2 and lines[1].startswith("  hint: Start the Docker engine")
    assert "[FAIL] engine" in out


def test_doctor_json_with_unreachable_engine_is_still_json(ptdesk_env: dict[str, str]) -> None:
    code, out, _ = run_cli(["doctor", "--json"], {**ptdesk_env, "DOCKER_HOST": NO_ENGINE})
    report = json.loads(out)
    assert code == 3 and report["ok"] is False
    assert report["engine"] == {"version": None, "api_version": None}
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["engine"] == "fail"
    assert "image-ssh" not in statuses, "no image verdict without an engine to ask"
    assert statuses["config"] == "ok" and statuses["state"] == "ok"


def test_every_command_of_every_topic_is_reachable_from_the_cli() -> None:
    """Commands are loaded lazily by name: a command a topic module defines but the table does not
    name would silently vanish from `ptdesk`."""
    from ptdesk.commands import COMMAND_TOPICS, TOPICS, topic_commands

    defined = {c.name: topic for topic in TOPICS for c in topic_commands(topic)}
    assert defined == COMMAND_TOPICS


def test_a_home_that_cannot_be_a_folder_is_one_line_not_a_traceback(ptdesk_env: dict[str, str], tmp_path: Path) -> None:
    """Errors of the machine (here: PTDESK_HOME under a regular file) read like every other error."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {**ptdesk_env, "PTDESK_HOME": str(blocker / "home")}
    code, out, err = run_cli(["collab", "ls"], env, subprocess_=True)
    assert code == 1 and out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith("ptdesk: Not a directory") and str(blocker) in lines[0]
    assert lines[1].startswith("  hint:")


def test_ls_with_an_ssh_engine_nobody_answers_is_one_sentence(ptdesk_env: dict[str, str]) -> None:
    """DOCKER_HOST=ssh://… where nothing listens: paramiko's "no valid connections" is a socket
    error, not an SSHException; it must still read as the engine not being reachable."""
    engine = "ssh://nobody@127.0.0.1:1"
    code, out, err = run_cli(["ls"], {**ptdesk_env, "DOCKER_HOST": engine}, subprocess_=True)
    assert code == 3 and "Traceback" not in out + err
    assert f"the Docker engine at {engine} is not reachable." in err.splitlines()[0]
