"""The environment pieces that need no engine: fingerprints, the probe script, the driver table,
the pin file, the listing mark."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ptdesk.config import load_config
from ptdesk.core.base.models import EnvironmentMark
from ptdesk.core.environment import baseline
from ptdesk.core.environment.recorded import Environment, ImageSummary, Package, fingerprint, labels_for
from ptdesk.core.gpu.driver_compat import TOOLKIT_DRIVER, driver_warning, required_driver
from ptdesk.errors import ConfigError
from tests.support.helpers import REPO

PROBE = REPO / "images" / "env-probe"


def _env(**versions: str) -> Environment:
    return Environment(os="Debian", python="3.11.2", packages=tuple(Package(n, v) for n, v in versions.items()),
                       cuda="12.8", cudnn="91002")


def test_fingerprint_is_short_order_free_and_follows_every_version() -> None:
    a = fingerprint("3.11.2", "12.8", "91002", {"numpy": "2.1.0", "torch": "2.9.0"})
    assert len(a) == 12 and int(a, 16) >= 0
    assert a == fingerprint("3.11.2", "12.8", "91002", {"torch": "2.9.0", "numpy": "2.1.0"})
    assert a != fingerprint("3.11.2", "12.8", "91002", {"numpy": "2.1.1", "torch": "2.9.0"})
    assert a != fingerprint("3.11.2", "12.6", "91002", {"numpy": "2.1.0", "torch": "2.9.0"})
    assert a != fingerprint("3.12.0", "12.8", "91002", {"numpy": "2.1.0", "torch": "2.9.0"})
    # A live probe does not import torch: it borrows the build's CUDA/cuDNN and gets the same answer.
    live = Environment(os="Debian", python="3.11.2", packages=_env(numpy="2.1.0", torch="2.9.0").packages)
    assert live.fingerprint("12.8", "91002") == a == _env(numpy="2.1.0", torch="2.9.0").fingerprint()


def test_labels_summarise_and_read_back() -> None:
    env = _env(numpy="2.1.0")
    labels = labels_for(env, {"Id": "sha256:" + "b" * 64, "RepoDigests": ["pytorch/pytorch@sha256:" + "c" * 64]})
    summary = ImageSummary.from_labels("sha256:" + "a" * 64, {**labels, "ptdesk.base": "pytorch/pytorch:2.9.0"})
    assert summary is not None
    assert (summary.fingerprint, summary.cuda, summary.torch, summary.packages) == (env.fingerprint(), "12.8",
                                                                                    "none", 1)
    assert summary.base_digest.startswith("pytorch/pytorch@sha256:") and summary.base == "pytorch/pytorch:2.9.0"
    assert ImageSummary.from_labels("sha256:x", {"ptdesk.image": "ssh"}) is None  # not recorded


def test_probe_text_from_a_container_loses_control_characters() -> None:
    env = Environment.from_probe({"os": "Deb\x1b[31mian", "python": "3.11",
                                  "packages": [{"name": "evil\x07pkg", "version": "1\r\n"}]})
    assert env.os == "Deb[31mian" and env.packages[0].name == "evilpkg" and env.packages[0].version == "1"


def test_the_probe_answers_with_python_and_without() -> None:
    with_python = json.loads(subprocess.run(["sh", str(PROBE), "--live"], capture_output=True, text=True,
                                            check=True).stdout)
    assert with_python["python"] and with_python["packages"] and with_python["torch"] is None
    assert {"name", "version", "uid", "user", "location"} <= set(with_python["packages"][0])
    bare = subprocess.run(["/bin/sh", str(PROBE), "--build"], capture_output=True, text=True, check=True,
                          env={"PATH": "/nonexistent"})
    assert json.loads(bare.stdout) == {"probe": 1, "mode": "build", "os": json.loads(bare.stdout)["os"],
                                       "python": None, "executable": None, "torch": None, "conda": None,
                                       "packages": []}


@pytest.mark.parametrize(("cuda", "driver"), [("12.8", "570.26"), ("12.4", "550.54.14"), ("12.6", "560.28.03"),
                                              ("11.8", "520.61.05"), ("13.0", "580.65.06"), ("12.1.1", "530.30.02")])
def test_driver_table_matches_nvidias_release_notes(cuda: str, driver: str) -> None:
    assert required_driver(cuda) == driver


def test_driver_warning_sentences() -> None:
    assert driver_warning("580.82.07", "12.8", "img") is None
    assert driver_warning("570.26", "12.8", "img") is None
    assert driver_warning(None, "12.8", "img") is None and driver_warning("470.57.02", "none", "img") is None
    too_old = driver_warning("470.57.02", "12.8", "img")
    assert too_old == ("The NVIDIA driver 470.57.02 is too old for CUDA 12.8 in img (it needs 570.26 or newer): "
                       "GPU code there will fail; update the driver, or use an image built for an older CUDA.")
    between = driver_warning("535.104.05", "12.8", "img")  # minor version compatibility: starts, partly works
    assert between is not None and between.startswith("The NVIDIA driver 535.104.05 is older than the 570.26")
    assert required_driver("12.7") == TOOLKIT_DRIVER[(12, 6)]  # unknown minor: at least the one before
    assert required_driver("garbage") is None and required_driver("10") is None


def test_pin_file_round_trip_keeps_other_kinds_and_compares(tmp_path: Path) -> None:
    config = load_config({"PTDESK_HOME": str(tmp_path / "home")})
    assert baseline.read(config) == {}
    summary = ImageSummary("sha256:" + "1" * 64, "f" * 12, "Debian", "3.11.2", "none", "12.8", "91002", "none", 2,
                           "base:1", "sha256:" + "2" * 64, "none")
    baseline.pin(config, [("ssh", "ptdesk/ssh:latest", summary, _env(numpy="2.1.0", rich="13.0"))], "alice")
    baseline.pin(config, [("jupyter", "ptdesk/jupyter:latest", summary, _env(numpy="2.1.0"))], "bob")
    pins = baseline.read(config)
    assert set(pins) == {"ssh", "jupyter"} and pins["ssh"].pinned_by == "alice"
    assert pins["ssh"].packages == {"numpy": "2.1.0", "rich": "13.0"}
    changes = baseline.compare(pins["ssh"], Environment("Debian", "3.12.0", (Package("numpy", "2.2.0"),),
                                                        cuda="12.8", cudnn="91002"))
    assert [(c.name, c.before, c.after, c.change) for c in changes] == [
        ("[python]", "3.11.2", "3.12.0", "changed"), ("numpy", "2.1.0", "2.2.0", "changed"),
        ("rich", "13.0", None, "removed")]
    assert baseline.compare(pins["ssh"], _env(numpy="2.1.0", rich="13.0")) == ()
    assert (config.baseline_path.stat().st_mode & 0o777) == 0o644
    error = baseline.drift_error({"ssh": changes}, config)
    assert error is not None and error.message.endswith(": ssh in 3 package(s).")


def test_a_damaged_or_missing_named_pin_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "baseline.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read"):
        baseline.read(load_config({"PTDESK_HOME": str(home)}))
    (home / "config.toml").write_text(f'baseline = "{tmp_path / "team" / "pin.json"}"\n')
    config = load_config({"PTDESK_HOME": str(home)})
    assert config.baseline_path == tmp_path / "team" / "pin.json"
    with pytest.raises(ConfigError, match="named in config.toml does not exist"):
        baseline.read(config)
    (home / "config.toml").write_text('baseline = "relative.json"\n')
    with pytest.raises(ConfigError, match="must be an absolute path"):
        load_config({"PTDESK_HOME": str(home)})


def test_the_listing_mark_reads_at_a_glance() -> None:
    assert EnvironmentMark("0fc5022754fb", "sha256:x").text == "0fc5022754fb"
    assert EnvironmentMark("0fc5022754fb", "sha256:x", behind=True, changed=True).text == \
        "0fc5022754fb behind,changed"
    assert EnvironmentMark(None, None, changed=False).text == "-"
    assert EnvironmentMark("a" * 12, None, driver_warning="old").marks == ("driver",)
