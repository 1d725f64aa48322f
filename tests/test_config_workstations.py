"""[workstations.NAME] in config.toml and the `--on` / `workstations` commands' bad input: one
sentence and a hint, a non-zero exit, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptdesk.config import for_workstation, load_config
from ptdesk.errors import ConfigError
from tests.support.helpers import run_cli


def home(tmp_path: Path, text: str) -> dict[str, str]:
    folder = tmp_path / "home"
    folder.mkdir(exist_ok=True)
    (folder / "config.toml").write_text(text)
    return {"PTDESK_HOME": str(folder), "PATH": "/usr/bin:/bin"}


def test_a_workstation_table_is_read_with_its_defaults(tmp_path: Path) -> None:
    config = load_config(home(tmp_path, 'default_workstation = "gpu2"\n[workstations.gpu2]\n'
                                        'engine = "ssh://ann@gpu2.lab:2222"\nbind_address = "10.0.0.2"\n'))
    entry = config.workstations["gpu2"]
    assert (entry.user, entry.host, entry.port, entry.connect_address) == ("ann", "gpu2.lab", 2222, "gpu2.lab")
    assert config.default_workstation == "gpu2"
    remote = for_workstation(config, entry)
    # Its own state, keys and files; its address in every connection line; its bind address.
    assert remote.home == config.home / "workstations" / "gpu2"
    assert remote.state_path == config.home / "workstations" / "gpu2" / "state.db"
    assert (remote.connect_host, remote.bind_address) == ("gpu2.lab", "10.0.0.2")
    assert remote.instance == config.instance


@pytest.mark.parametrize(("text", "words"), [
    ('[workstations.gpu2]\nengine = "tcp://gpu2:2375"\n', "is not an ssh://user@host[:port] address"),
    ('[workstations.gpu2]\nengine = "ssh://gpu2"\n', "is not an ssh://user@host[:port] address"),
    ('[workstations.gpu2]\nengine = "ssh://a:secret@gpu2"\n', "is not an ssh://user@host[:port] address"),
    ('[workstations.gpu2]\nengine = "ssh://a@gpu2"\nport = 22\n', "Unknown setting 'port'"),
    ('[workstations.gpu2]\naddress = "x"\n', "engine is missing"),
    ('[workstations.Local]\nengine = "ssh://a@b"\n', "cannot name a workstation"),
    ('[workstations.auto]\nengine = "ssh://a@b"\n', "cannot name a workstation"),
    ('[workstations.gpu2]\nengine = "ssh://a@b"\nidentity_file = "key"\n', "must be an absolute path"),
    ('default_workstation = "gpu9"\n', "names no workstation"),
    ('workstations = "gpu2"\n', "must be tables"),
])
def test_bad_workstation_settings_are_one_sentence(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(home(tmp_path, text))
    assert words in caught.value.message and caught.value.hint


@pytest.mark.parametrize("args", [["ls", "--on", "nope"], ["stop", "x", "--on", "nope"],
                                  ["gpus", "--on", "nope"], ["stop", "x", "--on", "auto"]])
def test_an_unknown_workstation_is_refused_before_anything_happens(tmp_path: Path, args: list[str]) -> None:
    env = home(tmp_path, "")
    rc, out, err = run_cli(args, env)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 2 and lines[0].startswith("ptdesk: ") and lines[1].startswith("  hint: ")
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["config.toml"]


@pytest.mark.parametrize(("args", "words"), [
    (["workstations", "add", "gpu2", "http://gpu2"], "is not an ssh://user@host[:port] address"),
    (["workstations", "add", "local", "ssh://a@127.0.0.1:1"], "cannot name a workstation"),
    (["workstations", "add", "gpu2", "ssh://a@127.0.0.1:1"], "is unreachable"),
    (["workstations", "rm", "gpu2"], "There is no workstation 'gpu2'"),
    (["workstations", "test", "gpu2"], "There is no workstation 'gpu2'"),
])
def test_workstations_bad_input_leaves_the_config_as_it_was(tmp_path: Path, args: list[str], words: str) -> None:
    env = home(tmp_path, "# mine\n")
    rc, out, err = run_cli(args, env)
    assert rc != 0 and words in err and "Traceback" not in err
    if words in ("is not an ssh://user@host[:port] address", "cannot name a workstation"):
        assert rc == 2, err  # malformed, as typed (README); was 1
    assert (tmp_path / "home" / "config.toml").read_text() == "# mine\n"
    assert not (tmp_path / "home" / "keys" / "workstations" / "known_hosts").exists()


# --- every value written into an OpenSSH config is one plain word (issue 20, finding 8) ----------
INJECTED = "gpu2.lab\nProxyCommand sh -c 'touch /tmp/owned'"


@pytest.mark.parametrize(("text", "words"), [
    (f'[workstations.gpu2]\nengine = "ssh://a@gpu2"\naddress = """{INJECTED}"""\n',
     "is not a host name or IP address"),
    ('[workstations.gpu2]\nengine = "ssh://a@gpu2"\naddress = "gpu2 lab"\n', "is not a host name or IP address"),
    ('[workstations.gpu2]\nengine = "ssh://a@gpu2"\naddress = "#gpu2"\n', "is not a host name or IP address"),
    ('[workstations.gpu2]\nengine = "ssh://a@gpu2"\nbind_address = "0.0.0.0 x"\n', "is not an IP address"),
    ('[workstations.gpu2]\nengine = "ssh://a b@gpu2"\n', "is not an ssh://user@host[:port] address"),
    (f'connect_address = """{INJECTED}"""\n', "connect_address"),
])
def test_a_newline_or_other_config_injection_is_refused_in_one_sentence(tmp_path: Path, text: str,
                                                                        words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(home(tmp_path, text))
    assert words in caught.value.message and "\n" not in caught.value.message.replace(INJECTED, "")
    assert caught.value.hint


def test_workstations_add_refuses_an_address_with_a_newline_and_writes_nothing(tmp_path: Path) -> None:
    env = home(tmp_path, "# mine\n")
    rc, out, err = run_cli(["workstations", "add", "gpu2", "ssh://a@127.0.0.1:1", "--address", INJECTED], env)
    assert rc != 0 and "is not a host name or IP address" in err and "Traceback" not in err
    assert (tmp_path / "home" / "config.toml").read_text() == "# mine\n"


def test_good_addresses_still_pass(tmp_path: Path) -> None:
    text = ('connect_address = "desk.example.org"\n[workstations.gpu2]\nengine = "ssh://ann@[fd00::2]:2222"\n'
            'address = "10.0.0.2"\n[workstations.gpu3]\nengine = "ssh://ann@gpu3"\naddress = "gpu3.lab.example.org"\n')
    config = load_config(home(tmp_path, text))
    assert config.connect_host == "desk.example.org"
    assert [e.connect_address for e in config.workstations.values()] == ["10.0.0.2", "gpu3.lab.example.org"]
