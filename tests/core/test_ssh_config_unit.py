"""ptdesk's ssh config, the Include line in ~/.ssh/config, and the settings around them (no engine)."""

from __future__ import annotations

import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ptdesk.config import load_config
from ptdesk.core.access import ssh_config, ssh_include
from ptdesk.core.base import keys
from ptdesk.core.collaborators import export
from ptdesk.core.environment import images
from ptdesk.core.store.state import ExperimentRecord, Store
from ptdesk.errors import ConfigError, InvalidInput

SSHD_CONFIG = Path(__file__).resolve().parents[2] / "images" / "ssh" / "sshd_config"


def _record(name: str, port: int | None = 2222, kind: str = "ssh") -> ExperimentRecord:
    return ExperimentRecord(name=name, kind=kind, owner="alice", image="i", status="running", created=time.time(),
                            port=port, host_public_key=keys.generate().public_line if kind == "ssh" else None)


def test_key_lines_permit_what_sshd_config_permits() -> None:
    """Per-key options and sshd_config say the same thing: the experiment's own loopback only."""
    settings = {}
    for line in SSHD_CONFIG.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            settings[key] = value
    assert settings["PermitOpen"].split() == list(keys.PERMIT_OPEN)
    assert settings["AllowTcpForwarding"] == "local" and settings["AllowStreamLocalForwarding"] == "no"
    assert settings["PermitListen"] == "none" and "DisableForwarding" not in settings
    assert keys.DEFAULT_KEY_OPTIONS.startswith("restrict,pty,port-forwarding,")
    assert keys.DEFAULT_KEY_OPTIONS.count("permitopen=") == len(keys.PERMIT_OPEN)


def test_only_plain_names_of_ssh_experiments_with_an_address_get_a_block() -> None:
    records = [_record("ok"), _record("bad name"), _record("x\n    ProxyCommand id"), _record("*"),
               _record("lab", kind="jupyter"), _record("nope", port=None)]
    assert [r.name for r in ssh_config.reachable(records)] == ["ok"]


def test_a_host_block_has_every_pin(tmp_path: Path) -> None:
    entry = ssh_config.HostEntry(alias="box", hostname="127.0.0.1", port=2222, user="ptdesk",
                                 identity_files=("/k/id",), known_hosts="/k/known", host_key_alias="ptdesk.box",
                                 proxy_jump="me@bastion:2200")
    assert ssh_config.render_host(entry) == (
        "Host box\n    HostName 127.0.0.1\n    Port 2222\n    User ptdesk\n    IdentityFile /k/id\n"
        "    IdentitiesOnly yes\n    UserKnownHostsFile /k/known\n    HostKeyAlias ptdesk.box\n"
        "    StrictHostKeyChecking yes\n    ProxyJump me@bastion:2200\n\n")


@pytest.mark.parametrize(("value", "written"), [("/a/b", "/a/b"), ("/my keys/id", '"/my keys/id"'),
                                                ("/50%/id", "/50%%/id"), ("~/.ssh/x", "~/.ssh/x")])
def test_config_arguments_are_quoted_and_token_escaped(value: str, written: str) -> None:
    assert ssh_config.config_arg(value) == written


@pytest.mark.parametrize("value", ['/a"b', "/a\nb"])
def test_what_ssh_config_cannot_hold_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput):
        ssh_config.config_arg(value)


def test_refresh_writes_reachable_ssh_experiments_and_prunes_the_rest(tmp_path: Path) -> None:
    config = load_config({"PTDESK_HOME": str(tmp_path / "home")})
    store = Store(config.state_path)
    try:
        with store.tx() as conn:
            for record in (_record("a"), _record("nope", port=None), _record("lab", kind="jupyter")):
                store.insert_experiment(conn, record)
        pending = _record("adopting", port=2300)  # inside a transaction not committed yet
        path = ssh_config.refresh(config, also=pending)
        text = path.read_text()
        assert "Host a\n" in text and "Host adopting\n" in text and "nope" not in text and "lab" not in text
        assert sorted(p.name for p in (path.parent / "known_hosts.d").iterdir()) == ["a", "adopting"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        ssh_config.refresh(config)
        assert "adopting" not in path.read_text()
        assert [p.name for p in (path.parent / "known_hosts.d").iterdir()] == ["a"]
    finally:
        store.close()


def test_install_goes_on_top_once_and_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config({"PTDESK_HOME": str(tmp_path / "home")})
    target = tmp_path / "dotfiles" / "ssh_config"
    target.parent.mkdir()
    target.write_text("Host work\n    User me\n")
    target.chmod(0o644)
    (tmp_path / ".ssh").mkdir(mode=0o755)
    (tmp_path / ".ssh" / "config").symlink_to(target)  # a dotfile manager's link stays a link
    assert not ssh_include.installed(config)
    assert ssh_include.install(config) is True
    assert (tmp_path / ".ssh" / "config").is_symlink()
    assert target.read_text() == f"Include {tmp_path / 'home' / 'ssh' / 'config'}\nHost work\n    User me\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / ".ssh").stat().st_mode) == 0o755  # not ours to change
    assert ssh_include.installed(config) and ssh_include.install(config) is False


def test_an_include_below_a_host_line_does_not_count(tmp_path: Path) -> None:
    config = load_config({"PTDESK_HOME": str(tmp_path / "home")})
    user = tmp_path / "config"
    user.write_text(f"Host work\n    User me\n{ssh_include.include_line(config)}\n")
    assert not ssh_include.installed(config, user)
    with pytest.raises(Exception, match="below a Host or Match line"):
        ssh_include.install(config, user)


@pytest.mark.parametrize("jump", ["me@bastion", "bastion.example.org", "me@10.0.0.1:2222", "me@[::1]:22"])
def test_jump_hosts(jump: str) -> None:
    assert export.jump_host(jump) == jump


@pytest.mark.parametrize("jump", ["-oProxyCommand=x", "me@", "me@host:0", "me@host:99999", "a b", "me@host;id"])
def test_bad_jump_hosts_are_refused(jump: str) -> None:
    with pytest.raises(InvalidInput):
        export.jump_host(jump)


def test_ssh_packages_reach_the_build_as_one_argument(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('ssh_packages = ["build-essential", "ffmpeg", "libc6=2.36-9"]\n')
    config = load_config({"PTDESK_HOME": str(tmp_path)})
    assert config.ssh_packages == ("build-essential", "ffmpeg", "libc6=2.36-9")
    assert images.build_args(config, "ssh") == {"PTDESK_EXTRA_PACKAGES": "build-essential ffmpeg libc6=2.36-9"}
    assert images.build_args(config, "jupyter") == {}
    assert images.build_args(load_config({"PTDESK_HOME": str(tmp_path / "none")}), "ssh") == {}


@pytest.mark.parametrize("value", ['"git"', '["-o", "x"]', '["git; rm -rf /"]', '["Git"]', "[1]", '["$(id)"]'])
def test_bad_ssh_packages_name_the_setting(tmp_path: Path, value: str) -> None:
    (tmp_path / "config.toml").write_text(f"ssh_packages = {value}\n")
    with pytest.raises(ConfigError, match="ssh_packages"):
        load_config({"PTDESK_HOME": str(tmp_path)})


@pytest.mark.parametrize(("field", "value"), [
    ("hostname", "box.lab\nProxyCommand touch /tmp/owned"), ("hostname", "box lab"), ("user", "eve\nMatch all"),
    ("alias", "box #x"), ("host_key_alias", 'ptdesk."box'), ("proxy_jump", "me@bastion\rProxyCommand id"),
])
def test_every_value_of_a_host_block_is_one_plain_word(field: str, value: str) -> None:
    """The renderer refuses what would end the line or add a directive, whoever checked it before."""
    entry = ssh_config.HostEntry(alias="box", hostname="127.0.0.1", port=2222, user="ptdesk",
                                 identity_files=("/k/id",), known_hosts="/k/known", host_key_alias="ptdesk.box")
    with pytest.raises(InvalidInput, match="cannot be written into an ssh config"):
        ssh_config.render_host(replace(entry, **{field: value}))


def test_a_note_is_one_printable_comment_line() -> None:
    entry = ssh_config.HostEntry(alias="box", hostname="127.0.0.1", port=2222, user="ptdesk", identity_files=(),
                                 known_hosts="/k/known", host_key_alias="ptdesk.box", note="key\nProxyCommand id")
    assert "\n    # key?ProxyCommand id\n" in ssh_config.render_host(entry)
