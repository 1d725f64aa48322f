"""The code kind without an engine: what it places in the container, what people read, and the
team's extension files checked before a build (one sentence each, nothing built)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from ptdesk.config import Config, Limits, load_config
from ptdesk.core.base.models import LaunchSpec
from ptdesk.core.environment import code_image
from ptdesk.core.kinds.code import CODE, CONFIG_FILE, HOSTS_FILE, PASSWORD_FILE, SECRET_DIR
from ptdesk.core.store import experiment_files
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.errors import ConfigError, PtdeskError
from tests.support.helpers import run_cli


def _config(tmp_path: Path, text: str = "", **env: str) -> Config:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(text)
    return load_config({"PTDESK_HOME": str(home), **env})


def _spec(name: str = "ed") -> LaunchSpec:
    return LaunchSpec(kind="code", name=name, owner="ann", image="ptdesk/code:latest", gpus="none",
                      workspace=Path("/nonexistent"), limits=Limits())


def _placed(plan) -> dict[str, object]:  # noqa: ANN001 - a Plan
    return {f"{dest}/{f.name}": f for dest, files in plan.files for f in files}


def test_the_password_goes_into_a_file_only_its_user_reads(tmp_path: Path) -> None:
    config = _config(tmp_path)
    plan = CODE.plan(config, _spec())
    password = experiment_files.read(config, "ed", PASSWORD_FILE)
    assert password and len(password) >= 32
    placed = _placed(plan)
    settings = placed[f"{SECRET_DIR}/{CONFIG_FILE}"]
    assert f'password: "{password}"' in settings.data.decode() and settings.mode == 0o400
    assert (settings.uid, settings.gid) == (config.uid, config.gid)
    assert "cert:" not in settings.data.decode()  # loopback: plain http
    hosts = placed[f"{SECRET_DIR}/{HOSTS_FILE}"]
    assert hosts.uid == 0 and hosts.mode == 0o444 and "127.0.0.1" in json.loads(hosts.data)
    # Nowhere else: not the command line, not the environment.
    assert password not in json.dumps([plan.command, plan.environment])
    assert plan.user == f"{config.uid}:{config.gid}" and not plan.cap_add


def test_beyond_loopback_it_serves_tls_with_a_pinned_certificate(tmp_path: Path) -> None:
    config = _config(tmp_path, 'bind_address = "10.0.0.5"\n')
    plan = CODE.plan(config, _spec())
    placed = _placed(plan)
    assert "cert: /etc/ptdesk/code_tls.crt" in placed[f"{SECRET_DIR}/{CONFIG_FILE}"].data.decode()
    assert placed[f"{SECRET_DIR}/code_tls.key"].mode == 0o400
    record = ExperimentRecord(name="ed", kind="code", owner="ann", image="ptdesk/code:latest", status="running",
                              created=0.0, port=41000)
    access = CODE.access(config, record, "10.0.0.5")
    assert access is not None and access.connect == "https://10.0.0.5:41000/?folder=/workspace"
    rows = dict(access.rows)
    assert rows["Password"] == experiment_files.read(config, "ed", PASSWORD_FILE)
    assert rows["Certificate"].startswith("SHA256:")
    assert "10.0.0.5" in json.loads(placed[f"{SECRET_DIR}/{HOSTS_FILE}"].data)


def _vsix(path: Path, manifest: object | None) -> Path:
    with zipfile.ZipFile(path, "w") as vsix:
        vsix.writestr("extension.vsixmanifest", "<PackageManifest/>")
        if manifest is not None:
            vsix.writestr("extension/package.json", json.dumps(manifest))
    return path


def test_team_extensions_are_read_from_config_and_go_into_the_build(tmp_path: Path) -> None:
    good = _vsix(tmp_path / "team.vsix", {"name": "team", "version": "1.0.0", "publisher": "us"})
    config = _config(tmp_path, f'code_extensions = ["{good}"]\n')
    assert config.code_extensions == (good,)
    assert code_image.extension_files(config) == {"extensions/01-team.vsix": good.read_bytes()}


@pytest.mark.parametrize(("make", "says"), [
    (lambda d: d / "missing.vsix", "does not exist"),
    (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", "is not a .vsix file"),
    (lambda d: (d / "broken.vsix").write_bytes(b"not a zip") and d / "broken.vsix", "is not a VS Code extension"),
    (lambda d: _vsix(d / "empty.vsix", None), "is not a VS Code extension"),
    (lambda d: _vsix(d / "noname.vsix", {"version": "1"}), "has no name or version"),
])
def test_an_extension_file_that_cannot_install_stops_the_build_before_it_starts(tmp_path: Path, make, says) -> None:
    path = make(tmp_path)
    config = _config(tmp_path, f'code_extensions = ["{path}"]\n')
    with pytest.raises(PtdeskError) as caught:
        code_image.extension_files(config)
    assert says in caught.value.message and str(path) in caught.value.message


@pytest.mark.parametrize("value", ['"one.vsix"', '["relative/ext.vsix"]'])
def test_code_extensions_must_be_a_list_of_absolute_paths(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, f"code_extensions = {value}\n")
    assert "code_extensions" in caught.value.message
    assert ".vsix" in caught.value.hint and "folder" not in caught.value.hint  # a file, not a folder


def test_the_cli_says_one_sentence_for_a_bad_extension_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(f'code_extensions = ["{tmp_path / "gone.vsix"}"]\n')
    code, _, err = run_cli(["images", "build", "code"],
                           env={"PTDESK_HOME": str(home), "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert code == 1 and "gone.vsix (code_extensions) does not exist" in err and "Traceback" not in err
