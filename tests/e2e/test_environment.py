"""Environment truth on the real engine: fingerprints, live package changes with who made them,
drift marks in `ls` and the dashboard's column, `env diff`, a rebuild that leaves experiments
behind, the team pin, and the driver warning (NVML scenario: old driver, CUDA 12.8 image).

Two jupyter experiments share one build (the suite's image); the rebuild and the pin use an ssh
tag of this module's own, built twice: once like the suite's image (its layers are cached), once
FROM a base that carries other packages, including a stand-in PyTorch that reports CUDA 12.8.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pynvml
import pytest

from ptdesk.config import load_config
from ptdesk.core.base.models import LaunchSpec, Limits
from ptdesk.core.engine.client import Engine
from ptdesk.core.experiments.launch import launch_warnings
from ptdesk.core.workstation import Workstation
from ptdesk.tui.widgets.experiments_table import environment_cell
from tests.support.helpers import BASE_IMAGE, JUPYTER_IMAGE, run_cli

# The NVML scenarios live with the GPU tests (tests/core); these tests reuse the old-driver one.
from tests.support.nvml_scenarios import old_driver  # noqa: E402
from tests.support.wheels import FAKE_TORCH, make_wheel

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py

pytestmark = pytest.mark.engine


def _image_fingerprint(engine: Engine, ref: str) -> str:
    info = engine.image_info(ref)
    assert info is not None, ref
    return info["Config"]["Labels"]["ptdesk.env.fingerprint"]


@pytest.fixture(scope="module")
def pair(module_desk: Ptdesk, engine: Engine) -> tuple[dict, dict]:
    """Two jupyter experiments from one build; in the first, alice pip-installs a wheel the test made."""
    a = module_desk.new("jupyter", "--name", "enva", "--owner", "alice")
    b = module_desk.new("jupyter", "--name", "envb", "--owner", "alice")
    wheel = make_wheel(module_desk.config.workspaces / "enva")  # that folder is the container's /workspace
    config = module_desk.config
    pip = "/opt/ptdesk/jupyter/bin/pip"  # ptdesk's execs run with the system folders as PATH
    rc, out = engine.exec(a["id"], [pip, "install", "--no-index", "--no-deps", f"/workspace/{wheel.name}"],
                          user=f"{config.uid}:{config.gid}")
    assert rc == 0, out.decode(errors="replace")
    return a, b


def test_two_experiments_from_one_build_share_its_fingerprint(module_desk: Ptdesk, pair: tuple[dict, dict],
                                                               engine: Engine) -> None:
    built = _image_fingerprint(engine, JUPYTER_IMAGE)
    listed = module_desk.listed()
    for name in ("enva", "envb"):
        mark = listed[name]["environment"]
        assert mark["fingerprint"] == built and not mark["behind"]
        assert mark["image_id"] == engine.image_info(JUPYTER_IMAGE)["Id"]
    assert module_desk.json("env", "envb")["live_fingerprint"] == built


def test_a_pip_install_shows_up_in_env_with_who_did_it(module_desk: Ptdesk, pair: tuple[dict, dict]) -> None:
    found = module_desk.json("env", "enva")
    assert found["changes"] == [{"name": "ptdesk-demo", "change": "installed", "before": None, "after": "1.0",
                                 "by": "alice"}]
    assert found["live_fingerprint"] != found["fingerprint"]
    text = module_desk.ok("env", "enva")
    assert "ptdesk-demo" in text and "installed" in text and "alice" in text


def test_env_diff_lists_the_package_between_experiments_and_against_the_image(module_desk: Ptdesk,
                                                                             pair: tuple[dict, dict]) -> None:
    rc, out, err = module_desk.run("env", "diff", "enva", "envb", "--json")
    assert rc == 1, err  # they differ: diff(1)'s exit code
    result = json.loads(out)
    assert result["packages"] == [{"name": "ptdesk-demo", "a": "1.0", "b": None, "change": "only in A"}]
    assert not result["same"]
    assert module_desk.json("env", "diff", "envb", "image:jupyter")["same"]  # rc 0: the same
    rc, text, _ = module_desk.run("env", "diff", "enva", "image:jupyter")
    assert rc == 1 and "ptdesk-demo  1.0  -" in text


def test_ls_and_the_dashboard_column_mark_the_changed_one(module_desk: Ptdesk, pair: tuple[dict, dict]) -> None:
    module_desk.ok("env")  # live-checks every running experiment: what refreshes the marks
    listed = module_desk.listed()
    assert listed["enva"]["environment"]["changed"] is True
    assert listed["envb"]["environment"]["changed"] is False
    assert " changed" in module_desk.ok("ls")
    ws = Workstation(module_desk.config)
    try:
        cells = {e.name: environment_cell(e).plain for e in ws.list_experiments()}
    finally:
        ws.close()
    assert cells["enva"].endswith(" changed") and "changed" not in cells["envb"]


def test_env_of_unknown_names_and_kinds_is_one_clear_line(module_desk: Ptdesk) -> None:
    assert "No experiment named 'nosuch'" in module_desk.fails("env", "nosuch")[0]
    assert "Unknown image kind 'gpu'" in module_desk.fails("env", "diff", "enva", "image:gpu")[0]


# --- a rebuild, the pin, the driver ------------------------------------------------------------
@dataclass(frozen=True)
class Drift:
    desk: Ptdesk
    tag: str
    first: str  # image id of the first build
    second: str
    rebuild: tuple[int, str, str]  # rc, stdout, stderr of the second `images build`


@pytest.fixture(scope="module")
def drift(module_desk: Ptdesk, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drift]:
    tag = f"ptdesk-test/env-ssh:{uuid.uuid4().hex[:8]}"
    base = f"ptdesk-test/env-base:{uuid.uuid4().hex[:8]}"
    desk = replace(module_desk, env={**module_desk.env, "PTDESK_SSH_IMAGE": tag})
    try:
        desk.ok("images", "build", "ssh", "--base", BASE_IMAGE, timeout=600)
        first = engine.image_info(tag)["Id"]
        desk.ok("images", "pin", "ssh")
        desk.new("ssh", "--name", "envs", "--owner", "alice")
        _build_base_with_other_packages(engine, base, tmp_path_factory.mktemp("wheels"))
        rebuild = desk.run("images", "build", "ssh", "--base", base, timeout=600)
        yield Drift(desk, tag, first, engine.image_info(tag)["Id"], rebuild)
    finally:
        for ref in (tag, base):
            if engine.image_exists(ref):
                engine.api.remove_image(ref, force=True)


def _build_base_with_other_packages(engine: Engine, tag: str, folder: Path) -> None:
    """FROM the suite's jupyter image (it has Python and pip), plus ptdesk-demo 2.0 and the torch stand-in."""
    wheels = [make_wheel(folder, "ptdesk-demo", "2.0"), make_wheel(folder, "torch", "2.9.0+cu128", FAKE_TORCH)]
    dockerfile = (f"FROM {JUPYTER_IMAGE}\nUSER root\nCOPY *.whl /tmp/\n"
                  "RUN pip install --no-index --no-deps /tmp/*.whl && rm /tmp/*.whl\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [("Dockerfile", dockerfile.encode()), *((w.name, w.read_bytes()) for w in wheels)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    engine.build(buffer.getvalue(), tag, {}, lambda _line: None)


def test_a_rebuild_with_other_packages_marks_old_experiments_behind(drift: Drift) -> None:
    assert drift.second != drift.first
    listed = drift.desk.listed()
    assert listed["envs"]["environment"]["behind"] is True
    assert listed["envs"]["environment"]["image_id"] == drift.first
    assert " behind" in drift.desk.ok("ls")
    rc, out, err = drift.desk.run("env", "diff", "envs", "image:ssh", "--json")
    assert rc == 1, err
    result = json.loads(out)
    differs = {p["name"]: (p["a"], p["b"]) for p in result["packages"]}
    assert differs["ptdesk-demo"] == (None, "2.0") and differs["torch"] == (None, "2.9.0+cu128")


def test_the_rebuild_records_torch_cuda_cudnn_and_nccl(drift: Drift) -> None:
    ssh = next(i for i in drift.desk.json("images", "ls") if i["target"] == "ssh")
    env = ssh["environment"]
    assert (env["torch"], env["cuda"], env["cudnn"], env["nccl"]) == ("2.9.0+cu128", "12.8", "91002", "2.27.3")
    assert env["base"].startswith("ptdesk-test/env-base:") and env["base_id"].startswith("sha256:")
    assert ssh["baseline"]["image_id"] == drift.first


def test_a_build_that_differs_from_the_pin_says_what_and_exits_non_zero(drift: Drift) -> None:
    rc, _out, err = drift.rebuild
    assert rc == 1, err
    assert "differs from the team baseline" in err
    assert "ptdesk-demo" in err and "torch" in err and "[python]" in err
    assert err.strip().splitlines()[-1].startswith("  hint: Accept it as the new baseline")
    assert "DIFFERS" in drift.desk.ok("images", "ls")
    # Launching from it says so too, until the team pins it.
    new = drift.desk.run("new", "ssh", "--name", "envs2", "--owner", "alice")
    assert new[0] == 0 and "is not the team baseline pinned on" in new[2]
    drift.desk.ok("images", "pin", "ssh")
    assert "pinned" in drift.desk.ok("images", "ls")


def test_an_old_driver_and_a_cuda_image_warn_in_new_and_doctor(drift: Drift, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    for name, function in old_driver().functions().items():
        monkeypatch.setattr(pynvml, name, function)
    ws = Workstation(load_config(drift.desk.env))
    try:
        inventory = ws.gpu_inventory()  # what launch() asks NVML before it gives GPUs
        spec = LaunchSpec(kind="ssh", name="gpubox", owner="alice", image=drift.tag, gpus="0",
                          workspace=tmp_path, limits=Limits())
        warnings = launch_warnings(ws, spec, (0,), inventory)
        # CPU-only launches need no driver: no sentence for them.
        assert not any("NVIDIA driver" in w for w in launch_warnings(ws, spec, (), inventory))
    finally:
        ws.close()
    sentence = f"The NVIDIA driver 470.57.02 is too old for CUDA 12.8 in {drift.tag} (it needs 570.26 or newer)"
    assert any(w.startswith(sentence) for w in warnings), warnings
    rc, out, _ = run_cli(["doctor"], drift.desk.env)
    line = next(ln for ln in out.splitlines() if "driver-cuda" in ln)
    assert line.startswith("[WARN]") and "470.57.02 is too old for CUDA 12.8" in line
