"""A day in an SSH experiment, end to end with OpenSSH's tools: `ssh NAME` through ptdesk's config
and the one Include line it adds, `ptdesk ssh`, the workbench (git, tmux, rsync, ...), rsync both
ways, sftp, a tmux session outliving a dropped connection, and collaborator exports in the same
style (with a jump host).

OpenSSH reads ~/.ssh from the passwd entry, not $HOME: ptdesk installs its Include into a fake
HOME, and the tests hand that file to OpenSSH with -F, as a person's ssh would read their own.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ptdesk.core.access import ssh_config
from tests.support.helpers import wait_until
from tests.support.workday_support import ptdesk_script, ssh

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py

WORKBENCH = ("git", "tmux", "rsync", "less", "vi", "nano", "htop", "curl", "ps", "/usr/lib/openssh/sftp-server")


@pytest.fixture(scope="module")
def day(module_desk: Ptdesk) -> dict:
    return module_desk.new("ssh", "--name", "day")


@pytest.fixture(scope="module")
def config(module_desk: Ptdesk, day: dict) -> Path:
    return module_desk.home / "ssh" / "config"


@pytest.fixture(scope="module")
def person(module_desk: Ptdesk, day: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose ~/.ssh/config already has the person's own entries; ptdesk --install adds its line."""
    home = tmp_path_factory.mktemp("person")
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "config").write_text("# my own settings\nHost *.example.org\n    User me\n")
    (home / ".ssh" / "config").chmod(0o600)
    return home


def test_ptdesk_keeps_one_pinned_host_block_per_experiment(config: Path, module_desk: Ptdesk, day: dict) -> None:
    text = config.read_text()
    block = text.split("Host day\n", 1)[1].split("\n\n", 1)[0]
    fields = dict(line.split(None, 1) for line in block.strip().splitlines())
    known = module_desk.home / "ssh" / "known_hosts.d" / "day"
    assert fields == {"HostName": "127.0.0.1", "Port": str(day["ssh"]["port"]), "User": "ptdesk",
                      "IdentityFile": day["ssh"]["identity_file"], "IdentitiesOnly": "yes",
                      "UserKnownHostsFile": str(known), "HostKeyAlias": "ptdesk.day",
                      "StrictHostKeyChecking": "yes"}
    assert known.read_text() == f"ptdesk.day {day['ssh']['known_hosts'].split(None, 1)[1]}\n"
    for path in (config, known):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    result = ssh(config, "day", "id -u")
    assert result.returncode == 0 and result.stdout.strip() == str(module_desk.config.uid), result.stderr


def test_install_adds_one_include_line_on_top_and_ssh_name_just_works(module_desk: Ptdesk, person: Path,
                                                                      day: dict) -> None:
    before = (person / ".ssh" / "config").read_text()
    env = {"HOME": str(person)}
    out = module_desk.ok("ssh-config", "--install", extra_env=env)
    assert "Added" in out
    after = (person / ".ssh" / "config").read_text()
    assert after == f"Include {module_desk.home / 'ssh' / 'config'}\n" + before
    assert stat.S_IMODE((person / ".ssh" / "config").stat().st_mode) == 0o600
    # Asked again, nothing changes.
    assert "Already there" in module_desk.ok("ssh-config", "--install", extra_env=env)
    assert (person / ".ssh" / "config").read_text() == after
    # The person's own ssh reads that file: `ssh day` logs in, pinned, with ptdesk's key.
    result = ssh(person / ".ssh" / "config", "day", "true")
    assert result.returncode == 0, result.stderr
    # And the connect column says so.
    assert module_desk.json("ls", extra_env=env)[0]["ssh"]["command"] == "ssh day"
    row = next(line for line in module_desk.ok("ls", extra_env=env).splitlines() if line.startswith("day "))
    assert row.rstrip().endswith("ssh day")
    assert module_desk.json("ssh-config", extra_env=env)["installed"] is True
    # Without the include (another HOME), the full command stays.
    assert module_desk.json("ls")[0]["ssh"]["command"].startswith("ssh -i ")


def test_install_makes_a_private_ssh_folder_when_there_is_none(module_desk: Ptdesk, tmp_path: Path,
                                                               day: dict) -> None:
    module_desk.ok("ssh-config", "--install", extra_env={"HOME": str(tmp_path)})
    assert stat.S_IMODE((tmp_path / ".ssh").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / ".ssh" / "config").stat().st_mode) == 0o600
    assert (tmp_path / ".ssh" / "config").read_text().count("\n") == 1


def test_ptdesk_ssh_runs_a_command_and_passes_its_exit_code(module_desk: Ptdesk, day: dict) -> None:
    run = subprocess.run([ptdesk_script(), "ssh", "day", "--", "sh", "-c", "id -u; exit 3"], env=module_desk.env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 3 and run.stdout.strip() == str(module_desk.config.uid), run.stderr


@pytest.mark.parametrize(("name", "says"), [("nope", "No experiment named 'nope'"),
                                            ("-oProxyCommand=touch /tmp/x", "No experiment named"),
                                            ("bad name", "No experiment named 'bad name'")])
def test_ptdesk_ssh_to_a_bad_name_is_one_clear_line(module_desk: Ptdesk, day: dict, name: str, says: str) -> None:
    assert says in module_desk.fails("ssh", "--", name, "true")[0]


def test_the_image_is_a_workbench(config: Path) -> None:
    result = ssh(config, "day", " && ".join(f"command -v {tool}" for tool in WORKBENCH))
    assert result.returncode == 0, result.stdout + result.stderr
    assert ssh(config, "day", "git --version && tmux -V && rsync --version | head -1").returncode == 0


def test_rsync_both_ways_through_the_config(config: Path, tmp_path: Path, day: dict, module_desk: Ptdesk) -> None:
    source = tmp_path / "data"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "weights.bin").write_bytes(os.urandom(256 * 1024))
    (source / "notes.txt").write_text("epoch 1\n")
    rsh = f"ssh -F {config} -o BatchMode=yes"
    up = subprocess.run(["rsync", "-a", "-e", rsh, f"{source}/", "day:/workspace/data/"],
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    back = tmp_path / "back"
    down = subprocess.run(["rsync", "-a", "-e", rsh, "day:/workspace/data/", f"{back}/"],
                          capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert (back / "sub" / "weights.bin").read_bytes() == (source / "sub" / "weights.bin").read_bytes()
    assert (back / "notes.txt").read_text() == "epoch 1\n"
    # In the workspace on the host, the files belong to the host user.
    workspace = module_desk.home / "workspaces" / "day" / "data" / "notes.txt"
    assert workspace.stat().st_uid == module_desk.config.uid


def test_sftp_puts_and_gets(config: Path, tmp_path: Path) -> None:
    (tmp_path / "up.txt").write_text("through sftp\n")
    batch = tmp_path / "batch"
    batch.write_text(f"put {tmp_path / 'up.txt'} /workspace/up.txt\nget /workspace/up.txt {tmp_path / 'down.txt'}\n")
    result = subprocess.run(["sftp", "-F", str(config), "-o", "BatchMode=yes", "-b", str(batch), "day"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "down.txt").read_text() == "through sftp\n"


def test_a_tmux_session_outlives_a_dropped_connection(config: Path) -> None:
    client = subprocess.Popen(["ssh", "-F", str(config), "-o", "BatchMode=yes", "-tt", "day",
                               "tmux new-session -s train 'sleep 300'"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: ssh(config, "day", "tmux list-clients -t train").stdout.strip(), timeout=30,
                   message="the attached tmux client")
    finally:
        client.kill()  # the laptop's lid closes: no goodbye, the connection just drops
        client.wait(timeout=15)
    wait_until(lambda: ssh(config, "day", "tmux list-clients -t train").stdout.strip() == "", timeout=60,
               message="sshd to notice the dropped connection")
    assert ssh(config, "day", "tmux has-session -t train").returncode == 0
    assert "sleep 300" in ssh(config, "day", "ps -eo args").stdout
    ssh(config, "day", "tmux kill-session -t train")


def test_collab_export_uses_the_same_host_blocks_and_a_jump_host(module_desk: Ptdesk, day: dict,
                                                                 tmp_path: Path) -> None:
    module_desk.ok("collab", "add", "jo")
    module_desk.ok("grant", "jo", "day")
    out = tmp_path / "jo"
    module_desk.ok("collab", "export", "jo", out, "--dest", out)
    text = (out / "ssh_config").read_text()
    # The owner's Host block, but with the person's own account (each person has one).
    entry = ssh_config.HostEntry(alias="day", hostname="127.0.0.1", port=day["ssh"]["port"], user="jo",
                                 identity_files=(str(out / "id_ed25519"),), known_hosts=str(out / "known_hosts"),
                                 host_key_alias="ptdesk.day")
    assert ssh_config.render_host(entry) in text
    assert (out / "known_hosts").read_text() == (module_desk.home / "ssh" / "known_hosts.d" / "day").read_text()
    result = ssh(out / "ssh_config", "day", "true")
    assert result.returncode == 0, result.stderr

    jumped = tmp_path / "jo-jump"
    module_desk.ok("collab", "export", "jo", jumped, "--dest", jumped, "--jump", "jo@bastion.example.org:2222")
    lines = (jumped / "ssh_config").read_text().splitlines()
    assert "    ProxyJump jo@bastion.example.org:2222" in lines
    assert module_desk.fails("collab", "export", "jo", tmp_path / "bad", "--jump", "-oProxyCommand=x")[0] \
        .startswith("ptdesk: The jump host")
    assert not (tmp_path / "bad").exists()


def test_rm_takes_the_host_block_and_its_pin_away(cli: Ptdesk) -> None:
    cli.new("ssh", "--name", "brief")
    config, pin = cli.home / "ssh" / "config", cli.home / "ssh" / "known_hosts.d" / "brief"
    assert "Host brief\n" in config.read_text() and pin.exists()
    cli.ok("rm", "--force", "brief")
    assert "Host brief" not in config.read_text() and not pin.exists()
