"""A collaborator's code never runs as anyone else when ptdesk looks inside an experiment.

eve has her own account in an SSH experiment and writes what Python would pick up if ptdesk's
environment probe ran it from the workspace or imported the environment's packages: a json.py, a
sitecustomize.py and a usercustomize.py, a .pth file (in the workspace, and in a site folder the
image left open to anyone) and a fake torch/ package. Each writes a marker
naming the uid it ran as. `ptdesk env NAME` and the dashboard's environment refresh (the same core
call its timer makes) must leave no marker of any uid but eve's; before the probe ran isolated from
/, eve's json.py ran as the owner.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ptdesk.core.engine.client import Engine
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError
from tests.support.accounts_support import person
from tests.support.helpers import SSH_IMAGE, remove_instance_containers

if TYPE_CHECKING:
    from tests.e2e.conftest import Ptdesk

pytestmark = pytest.mark.engine

# Each planted file writes /tmp/planted.<what>.<uid it ran as> the moment Python runs it.
PAYLOAD = "import os; open('/tmp/planted.%s.' + str(os.getuid()), 'w').close()"
PLANTED = {
    "json.py": PAYLOAD % "json",
    "sitecustomize.py": PAYLOAD % "sitecustomize",
    "usercustomize.py": PAYLOAD % "usercustomize",
    "evil.pth": PAYLOAD % "pth",
    "torch/__init__.py": PAYLOAD % "torch" + "\n__version__ = '9.9'\n",
    "torch/version.py": PAYLOAD % "torchversion" + "\ncuda = '99.0'\n",
}


def _markers(engine: Engine, container: str) -> list[str]:
    rc, out = engine.exec(container, ["ls", "-1", "/tmp"])
    assert rc == 0, out
    return [name for name in out.decode().split() if name.startswith("planted.")]


@pytest.fixture(scope="module")
def python_ssh_image(engine: Engine, module_env: dict[str, str]) -> Iterator[str]:
    """The suite's SSH image plus Debian's python3 (the real one, on PyTorch, has Python; the test
    base has none), under a tag of this module's own, removed after."""
    tag = f"ptdesk-test/ssh-python:{uuid.uuid4().hex[:8]}"
    dockerfile = (f"FROM {SSH_IMAGE}\nRUN apt-get update && apt-get install -y --no-install-recommends python3 "
                  "&& rm -rf /var/lib/apt/lists/*\n").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    engine.build(buffer.getvalue(), tag, {}, lambda _line: None)
    try:
        yield tag
    finally:
        remove_instance_containers(engine, module_env["PTDESK_INSTANCE"])  # the image's users first
        engine.api.remove_image(tag, force=True)


@pytest.fixture(scope="module")
def planted(module_desk: Ptdesk, engine: Engine, python_ssh_image: str,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, int]:
    desk = replace(module_desk, env={**module_desk.env, "PTDESK_SSH_IMAGE": python_ssh_image})
    box = desk.new("ssh", "--name", "probed", "--cpus", "1")
    # An image whose site folder anyone may write (some images open theirs up for convenience).
    rc, out = engine.exec(box["id"], ["sh", "-c", "d=$(python3 -I -c 'import site; print(site.getsitepackages()[0])') "
                                                  "&& mkdir -p $d && chmod 1777 $d && echo $d"])
    assert rc == 0, out
    site_folder = out.decode().strip()
    eve = person(desk, "eve", tmp_path_factory.mktemp("people"), "probed")
    script = "mkdir -p /workspace/torch && " + " && ".join(
        f"printf '%s\\n' \"{text}\" > /workspace/{name}" for name, text in PLANTED.items())
    script += f" && printf '%s\\n' \"{PAYLOAD % 'sitepth'}\" > {site_folder}/evil.pth"
    made = eve.ssh("probed", f"{script} && id -u")
    assert made.returncode == 0, made.stderr
    # Sanity: the payloads do run when Python is pointed at them (as eve herself, here).
    ran = eve.ssh("probed", "cd /workspace && python3 -c 'import json, torch' && ls /tmp")
    assert all(f"planted.{what}." in ran.stdout for what in ("json", "torch", "sitepth")), ran
    return box, int(made.stdout.split()[-1])


def test_env_never_runs_a_collaborators_workspace_code_as_anyone_else(module_desk: Ptdesk, planted: tuple[dict, int],
                                                                      engine: Engine) -> None:
    box, eve_uid = planted
    rc, out, err = module_desk.run("env", "probed", "--json")
    assert [m for m in _markers(engine, box["id"]) if not m.endswith(f".{eve_uid}")] == []
    assert rc == 0, err
    found = json.loads(out)
    assert found["live"] is not None and found["live"]["python"], found  # the probe still answers
    assert found["live"]["torch"] is None  # the fake torch/ was not imported for its version


def test_the_dashboards_environment_refresh_never_runs_it_either(module_desk: Ptdesk, planted: tuple[dict, int],
                                                                 engine: Engine) -> None:
    box, eve_uid = planted
    ws = Workstation(module_desk.config)
    try:
        checked = ws.check_environments()  # what the dashboard's "env" feed runs on its timer
    except PtdeskError as exc:
        checked = exc
    finally:
        ws.close()
    assert [m for m in _markers(engine, box["id"]) if not m.endswith(f".{eve_uid}")] == []
    assert not isinstance(checked, PtdeskError), checked
    assert [c.name for c in checked if c.live is not None] == ["probed"]


def test_the_probe_reads_no_interpreter_someone_else_may_change(module_desk: Ptdesk, planted: tuple[dict, int],
                                                                engine: Engine) -> None:
    """An image whose PATH would find a python3 in a folder others may write: not run, said so."""
    box, _ = planted
    rc, _ = engine.exec(box["id"], ["sh", "-c", "mkdir -m 1777 /tmp/bin && cp /bin/true /tmp/bin/python3"])
    assert rc == 0
    script = (Path(__file__).resolve().parents[2] / "images" / "env-probe").read_text()
    rc, out = engine.exec(box["id"], ["/usr/bin/env", "-i", "/bin/sh", "-c", script, "env-probe", "--live",
                                      "/tmp/bin:/usr/bin"], user="65534")
    assert rc == 3 and b"/tmp/bin/python3 may be changed by others than root" in out, out
