"""ptdesk.config: TOML settings, validation that names the bad key, environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptdesk.config import DEFAULT_BASE_IMAGE, default_home, load_config
from ptdesk.core.base.models import Limits
from ptdesk.errors import ConfigError
from tests.support.helpers import run_cli


def _home(tmp_path: Path, toml: str | None = None) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if toml is not None:
        (home / "config.toml").write_text(toml)
    return {"PTDESK_HOME": str(home)}


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    config = load_config(_home(tmp_path))
    assert config.home == tmp_path / "home"
    assert (config.bind_address, config.instance, config.base_image) == ("127.0.0.1", "default", DEFAULT_BASE_IMAGE)
    assert config.images == {}
    assert config.keys_dir == tmp_path / "home" / "keys"
    assert config.state_path == tmp_path / "home" / "state.db"
    assert config.workspaces == tmp_path / "home" / "workspaces"
    assert config.ca_bundle is None and config.idle_cull_seconds == 0


def test_home_defaults_to_the_platform_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # default_home reads the real environment
    assert default_home() == tmp_path / "data" / "ptdesk"
    assert load_config({}).home == tmp_path / "data" / "ptdesk"


def test_home_without_xdg_data_home_is_under_local_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for unset in ("", "  "):  # unset or blank: the XDG rule's default
        monkeypatch.setenv("XDG_DATA_HOME", unset)
        assert default_home() == tmp_path / ".local" / "share" / "ptdesk"


def test_toml_settings_are_applied(tmp_path: Path) -> None:
    env = _home(tmp_path, """
bind_address = "10.0.0.5"
ssh_image = "lab/ssh:v2"
jupyter_image = "lab/jupyter:v2"
base_image = "nvcr.io/nvidia/pytorch:25.01-py3"
workspace_root = "~/experiments"
uid = 1234
gid = 4321
instance = "lab-a"
ready_timeout = 120
ca_bundle = "/etc/ssl/certs/corp.pem"
idle_cull_seconds = 3600

[limits]
memory = "32g"
cpus = 8
pids = 1024
shm_size = "2g"
""")
    config = load_config(env)
    assert config.bind_address == "10.0.0.5"
    assert config.images == {"ssh": "lab/ssh:v2", "jupyter": "lab/jupyter:v2"}
    assert config.base_image == "nvcr.io/nvidia/pytorch:25.01-py3"
    assert config.workspaces == Path("~/experiments").expanduser()
    assert (config.uid, config.gid, config.instance) == (1234, 4321, "lab-a")
    assert config.ready_timeout == 120.0 and config.idle_cull_seconds == 3600
    assert config.ca_bundle == Path("/etc/ssl/certs/corp.pem")
    assert config.limits == Limits(memory="32g", cpus=8.0, pids=1024, shm_size="2g")


def test_partial_limits_keep_the_other_defaults(tmp_path: Path) -> None:
    config = load_config(_home(tmp_path, '[limits]\nmemory = "8g"\n'))
    assert config.limits.memory == "8g"
    assert config.limits.pids == Limits().pids and config.limits.shm_size == Limits().shm_size


@pytest.mark.parametrize(("toml", "named"), [
    ('bind_address = "everywhere"', "bind_address 'everywhere'"),
    ("uid = \"alice\"", "uid in"),
    ("ready_timeout = \"soon\"", "ready_timeout in"),
    ('instance = "Bad Name"', "instance 'Bad Name'"),
    ("colour = 'blue'", "Unknown setting 'colour'"),
    ('[limits]\nmemory = "lots"', "memory 'lots'"),
    ('[limits]\ngpus = 2', "Unknown limit 'gpus'"),
    ('limits = "16g"', "'limits'"),
    ("bind_address = ", "cannot be read"),  # TOML syntax error
    # Docker reads a memory limit of 0 as unlimited: never a silent "no limit".
    ('[limits]\nmemory = "0"', "memory '0' in"),
    ('[limits]\nmemory = "1m"', "too small"),
    ('[limits]\ncpus = 0', "cpus and pids must be positive"),
    ('[limits]\ncpus = nan', "cpus and pids must be positive"),
    # A relative bind source would become a Docker named volume, not a folder.
    ('workspace_root = "experiments"', "workspace_root in"),
    ('workspace_root = ""', "workspace_root in"),
    ("uid = 0", "uid/gid in"),
    ("ready_timeout = -5", "ready_timeout in"),
])
def test_bad_values_raise_config_error_naming_the_key(tmp_path: Path, toml: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_home(tmp_path, toml))
    assert named in info.value.message
    assert info.value.hint or "must be" in info.value.message, "the user is told what to do"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = _home(tmp_path, 'instance = "from-file"\nbind_address = "10.0.0.5"\nssh_image = "file/ssh"\n')
    env.update(PTDESK_INSTANCE="from-env", PTDESK_BIND_ADDRESS="0.0.0.0", PTDESK_SSH_IMAGE="env/ssh:1",
               PTDESK_JUPYTER_IMAGE="env/jupyter:1")
    config = load_config(env)
    assert (config.instance, config.bind_address) == ("from-env", "0.0.0.0")
    assert config.images == {"ssh": "env/ssh:1", "jupyter": "env/jupyter:1"}
    # An empty variable is "not set", not "set to empty".
    env["PTDESK_INSTANCE"] = ""
    assert load_config(env).instance == "from-file"


def test_bad_environment_value_names_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bind_address 'nowhere' in the environment"):
        load_config({**_home(tmp_path), "PTDESK_BIND_ADDRESS": "nowhere"})


def test_cli_reports_a_bad_config_in_one_line(ptdesk_env: dict[str, str]) -> None:
    home = Path(ptdesk_env["PTDESK_HOME"])
    home.mkdir(parents=True)
    (home / "config.toml").write_text('bind_address = "everywhere"\n')
    code, out, err = run_cli(["images", "ls"], ptdesk_env)
    assert code == 1 and out == ""
    assert err.splitlines()[0].startswith("ptdesk: bind_address 'everywhere' in ")
    assert "Traceback" not in err


def test_a_config_file_that_is_not_text_is_a_clear_error(tmp_path: Path) -> None:
    env = _home(tmp_path)
    (Path(env["PTDESK_HOME"]) / "config.toml").write_bytes(b"bind_address = \"\xff\xfe\"\n")
    with pytest.raises(ConfigError) as info:
        load_config(env)
    assert "cannot be read" in info.value.message


def test_memory_zero_on_the_command_line_is_refused(ptdesk_env: dict[str, str]) -> None:
    code, out, err = run_cli(["new", "ssh", "--name", "nolimit", "--memory", "0"], ptdesk_env)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("ptdesk: memory '0' is too small to be a limit.")


def test_a_mistyped_ptdesk_variable_is_warned_about_once(tmp_path) -> None:
    from tests.support.helpers import run_cli

    env = {"PTDESK_HOME": str(tmp_path / "home"), "PTDESK_HOMR": "/elsewhere", "PTDESK_SSH_IMAGE": "x:y",
           "PTDESK_TEST_SSH_IMAGE": "x:y", "PATH": "/usr/bin:/bin"}
    rc, out, err = run_cli(["workstations", "ls"], env, subprocess_=True)
    assert rc == 0
    assert err.count("PTDESK_HOMR is not a setting ptdesk reads, so it is ignored; did you mean PTDESK_HOME?") == 1
    assert "PTDESK_SSH_IMAGE" not in err and "PTDESK_TEST_" not in err and "PTDESK_HOME " not in err


def test_the_workstation_a_config_is_for_is_not_a_toml_setting(tmp_path) -> None:
    from ptdesk.config import load_config
    from ptdesk.errors import ConfigError

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('workstation = "box"\n')
    with pytest.raises(ConfigError):
        load_config({"PTDESK_HOME": str(home)})
