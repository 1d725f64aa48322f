"""Collaborators, grants and key rotation, end to end: real CLI, engine, sshd, paramiko and OpenSSH.

Two SSH experiments and one Jupyter experiment (module-scoped) serve the tests that only grant and
revoke; each test uses collaborators of its own, so they do not disturb each other. Tests that stop,
restart or break containers launch their own in a per-test instance.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import wait_until

from ptdesk.core import authorized_keys, collab, rotation
from ptdesk.core.engine import Engine
from ptdesk.core.sshcheck import LoginResult, try_login
from ptdesk.core.workstation import Workstation

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py


@pytest.fixture(scope="module")
def boxes(module_desk: Ptdesk) -> dict[str, dict]:
    """m1, m2 (ssh) and nb (jupyter), shared by the tests that do not stop or break containers."""
    out = {name: module_desk.new("ssh", "--name", name, "--cpus", "1") for name in ("m1", "m2")}
    out["nb"] = module_desk.new("jupyter", "--name", "nb", "--cpus", "1")
    return out


@pytest.fixture
def module_core(module_desk: Ptdesk) -> Iterator[Workstation]:
    """The core API on the module's environment (what the dashboard calls)."""
    ws = Workstation(module_desk.config)
    yield ws
    ws.close()


# --- helpers ------------------------------------------------------------------------------------


def attempt(p: Ptdesk, experiment: str, key: Path) -> LoginResult:
    """One login as the container user with the experiment's pinned host key (paramiko)."""
    ssh = p.listed()[experiment]["ssh"]
    host_key = ssh["known_hosts"].split(None, 1)[1]
    return try_login(ssh["host"], ssh["port"], ssh["user"], key, host_key)


def logs_in(p: Ptdesk, experiment: str, key: Path) -> bool:
    result = attempt(p, experiment, key)
    assert result.ok or result.detail.startswith("refused"), f"{experiment}: {result.detail}"
    return result.ok


def openssh(config: Path, host: str) -> subprocess.CompletedProcess[str]:
    """The real OpenSSH client, configured only by an exported ssh_config."""
    return subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", host, "id -u"],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def add(p: Ptdesk, name: str, *args: object) -> dict:
    return p.json("collab", "add", name, *args)


def keep_copy(source: str | Path, dest: Path) -> Path:
    """A copy of a private key as the person holds it (0600, like ssh wants)."""
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.write_bytes(Path(source).read_bytes())
    dest.chmod(0o600)
    return dest


def assert_private(path: Path) -> None:
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path}: {oct(path.stat().st_mode)}"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, f"{path.parent}: {oct(path.parent.stat().st_mode)}"


def authorized(engine: Engine, p: Ptdesk, experiment: str) -> str:
    return authorized_keys.read_authorized_keys(engine, p.listed()[experiment]["id"])


def pending_of(p: Ptdesk, name: str) -> list[str]:
    return next(c for c in p.json("collab", "ls") if c["name"] == name)["pending"]


# --- add, grant, export, revoke -----------------------------------------------------------------


def test_add_makes_a_private_key_and_export_lets_openssh_in(boxes: dict, module_desk: Ptdesk, tmp_path: Path,
                                                            engine: Engine) -> None:
    made = add(module_desk, "ann", "--expires", "30d")
    assert set(made) == {"name", "fingerprint", "public_key", "identity_file", "workstation"}
    assert made["fingerprint"].startswith("SHA256:") and made["public_key"].startswith("ssh-ed25519 ")
    assert_private(Path(made["identity_file"]))
    module_desk.ok("grant", "ann", "m1")
    module_desk.ok("grant", "ann", "m2")

    out = tmp_path / "ann-bundle"
    module_desk.ok("collab", "export", "ann", out, "--dest", out)  # the person keeps it where it was written
    assert_private(out / "id_ed25519")
    assert_private(out / "ssh_config")
    for host in ("m1", "m2"):
        result = openssh(out / "ssh_config", host)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(module_desk.config.uid)
    config = (out / "ssh_config").read_text()
    for word in ("HostName", "Port", "User ptdesk", "IdentityFile", "UserKnownHostsFile", "IdentitiesOnly yes"):
        assert config.count(word) == 2, word
    assert len((out / "known_hosts").read_text().splitlines()) == 2
    # The expiry reaches sshd as its own option (in UTC), and sshd accepts the line.
    assert 'expiry-time="' in authorized(engine, module_desk, "m1")
    # Listed with where it may go.
    listed = next(c for c in module_desk.json("collab", "ls") if c["name"] == "ann")
    assert listed["grants"] == ["m1", "m2"] and listed["expires"] and listed["pending"] == []


def test_export_says_who_can_reach_what_and_refuses_an_empty_bundle(boxes: dict, module_desk: Ptdesk,
                                                                    tmp_path: Path) -> None:
    """Was: an empty config and exit 0 for a person with no grants; HostName 127.0.0.1 written into a
    remote person's config without a word; a closing hint that did not name the hosts."""
    add(module_desk, "eli")
    empty = tmp_path / "eli-nothing"
    line = module_desk.fails("collab", "export", "eli", empty)[0]
    assert "no access to any experiment" in line and not empty.exists()

    module_desk.ok("grant", "eli", "m1")
    rc, _, err = module_desk.run("collab", "export", "eli", tmp_path / "eli", "--dest", tmp_path / "eli")
    assert rc == 0
    assert "warning: bind_address is 127.0.0.1" in err and "--jump" in err  # this box only, and the way out
    assert "(one of: m1)" in err
    rc, _, err = module_desk.run("collab", "export", "eli", tmp_path / "eli-j", "--jump", "eli@this-box")
    assert rc == 0 and "warning" not in err  # through a jump host, the loopback address is right


def test_own_key_is_installed_and_export_has_no_private_key(boxes: dict, module_desk: Ptdesk, tmp_path: Path,
                                                            keygen: Callable[[str], Path]) -> None:
    private = keygen("bea")
    made = add(module_desk, "bea", "--pubkey", f"{private}.pub")
    assert made["identity_file"] is None
    module_desk.ok("grant", "bea", "m1")
    assert logs_in(module_desk, "m1", private)
    assert not logs_in(module_desk, "m2", private)  # only where granted
    out = tmp_path / "bea-bundle"
    module_desk.ok("collab", "export", "bea", out, "--dest", out)
    assert not (out / "id_ed25519").exists()
    result = subprocess.run(["ssh", "-F", str(out / "ssh_config"), "-i", str(private), "-o", "BatchMode=yes",
                             "m1", "true"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr


def test_export_names_the_files_where_the_person_keeps_them(boxes: dict, module_desk: Ptdesk,
                                                           tmp_path: Path) -> None:
    """ssh_config points into the folder on the person's machine (~/.ssh/ptdesk-NAME unless --dest
    says otherwise), never at where it was written here."""
    add(module_desk, "kim")
    module_desk.ok("grant", "kim", "m1")
    out = tmp_path / "kim-bundle"
    rc, _, err = module_desk.run("collab", "export", "kim", out)
    assert rc == 0, err
    config = (out / "ssh_config").read_text()
    paths = [line.split(None, 1)[1] for line in config.splitlines()
             if line.split()[:1] in (["IdentityFile"], ["UserKnownHostsFile"])]
    assert paths == ["~/.ssh/ptdesk-kim/id_ed25519", "~/.ssh/ptdesk-kim/known_hosts"]
    assert str(tmp_path) not in config and str(module_desk.home) not in config
    assert f"copy {out} to ~/.ssh/ptdesk-kim on your machine, then: ssh -F ~/.ssh/ptdesk-kim/ssh_config" in err

    # A destination with a space (and a quote the shell must not trip on) is quoted in ssh_config,
    # and the very command printed for the person logs in with the real OpenSSH client.
    spaced = tmp_path / "kim's keys" / "for kim"
    rc, _, err = module_desk.run("collab", "export", "kim", spaced, "--dest", spaced)
    assert rc == 0, err
    config = (spaced / "ssh_config").read_text()
    assert f'    IdentityFile "{spaced}/id_ed25519"\n' in config
    assert f'    UserKnownHostsFile "{spaced}/known_hosts"\n' in config
    printed = err.strip().splitlines()[-1].split("then: ", 1)[1].split(" (one of: ", 1)[0]
    assert printed.startswith("ssh -F ") and printed.endswith(" EXPERIMENT")
    command = printed.replace("ssh -F", "ssh -o BatchMode=yes -F", 1).replace("EXPERIMENT", "m1 id -u")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(module_desk.config.uid)


def test_revoke_refuses_new_logins_at_once(boxes: dict, module_desk: Ptdesk, tmp_path: Path) -> None:
    key = Path(add(module_desk, "cid")["identity_file"])
    module_desk.ok("grant", "cid", "m1")
    module_desk.ok("grant", "cid", "m2")
    assert logs_in(module_desk, "m1", key)
    module_desk.ok("revoke", "cid", "m1")
    # No waiting: the very next login is refused, and the other grant still works.
    assert not logs_in(module_desk, "m1", key)
    assert logs_in(module_desk, "m2", key)
    # The owner is never affected.
    owner_key = Path(boxes["m1"]["ssh"]["identity_file"])
    assert logs_in(module_desk, "m1", owner_key)
    assert_private(key)


def test_remove_revokes_everywhere_and_deletes_the_keys(boxes: dict, module_desk: Ptdesk, engine: Engine) -> None:
    made = add(module_desk, "dov")
    key = keep_copy(made["identity_file"], module_desk.home.parent / "dov-copy" / "id_ed25519")
    module_desk.ok("grant", "dov", "m1")
    module_desk.ok("grant", "dov", "m2")
    assert logs_in(module_desk, "m2", key)
    module_desk.ok("collab", "rm", "dov")
    assert not logs_in(module_desk, "m1", key) and not logs_in(module_desk, "m2", key)
    assert made["fingerprint"] not in json.dumps(module_desk.json("collab", "ls"))
    assert not Path(made["identity_file"]).parent.exists()
    actions = [(e["action"], e["target"]) for e in module_desk.json("audit")]
    assert ("collab-remove", "dov") in actions and ("revoke", "m1") in actions


def test_concurrent_grants_to_one_container_all_land(boxes: dict, module_desk: Ptdesk, engine: Engine) -> None:
    """Two desks (like the dashboard and a terminal) granting at once never drop each other's key."""
    names = ["g1", "g2", "g3", "g4"]
    made = {n: add(module_desk, n) for n in names}
    errors: list[BaseException] = []

    def grant(name: str) -> None:
        ws = Workstation(module_desk.config)
        try:
            collab.grant(ws, name, "m2")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            ws.close()

    threads = [threading.Thread(target=grant, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    text = authorized(engine, module_desk, "m2")
    for name in names:
        assert made[name]["public_key"].split()[1] in text
        assert logs_in(module_desk, "m2", Path(made[name]["identity_file"]))


def test_expired_key_is_refused_by_sshd(boxes: dict, module_desk: Ptdesk, module_core: Workstation) -> None:
    key = Path(add(module_desk, "eve", "--expires", "1d")["identity_file"])
    module_desk.ok("grant", "eve", "m1")
    assert logs_in(module_desk, "m1", key)
    # Move the expiry into the past (as if a day went by) and re-render from state.
    module_core.store.update_collaborator("eve", expires=1_000_000_000.0)
    with collab.container_lock(module_core.config, "m1"):
        collab.reinstall(module_core, "m1")
    assert not logs_in(module_desk, "m1", key)


# --- rotation -----------------------------------------------------------------------------------


def test_rotation_over_two_containers_leaves_a_third_person_untouched(
        boxes: dict, module_desk: Ptdesk, tmp_path: Path, keygen: Callable[[str], Path]) -> None:
    old = keep_copy(add(module_desk, "ray")["identity_file"], tmp_path / "ray-old" / "id_ed25519")
    third = keygen("sam")
    add(module_desk, "sam", "--pubkey", f"{third}.pub")
    for who in ("ray", "sam"):
        for box in ("m1", "m2"):
            module_desk.ok("grant", who, box)
    assert all(logs_in(module_desk, box, old) for box in ("m1", "m2"))

    result = module_desk.json("collab", "rotate", "ray")
    assert {"name", "old_fingerprint", "fingerprint", "identity_file", "containers"} <= set(result)
    assert result["old_fingerprint"] != result["fingerprint"]
    assert [(c["name"], c["status"], c["verified"]) for c in result["containers"]] == \
        [("m1", "rotated", True), ("m2", "rotated", True)]

    new = Path(result["identity_file"])
    assert_private(new)
    for box in ("m1", "m2"):
        assert not logs_in(module_desk, box, old), f"old key still works on {box}"
        assert logs_in(module_desk, box, new)
        assert logs_in(module_desk, box, third), f"sam lost access to {box}"
    # The person gets the new key with export; OpenSSH gets in with it.
    out = tmp_path / "ray-bundle"
    module_desk.ok("collab", "export", "ray", out, "--dest", out)
    assert openssh(out / "ssh_config", "m2").returncode == 0
    # The previous key is gone from the host once nothing waits on it.
    assert not (new.parent / collab.PREVIOUS).exists()
    entry = [e for e in module_desk.json("audit") if e["action"] == "collab-rotate"][-1]
    assert entry["target"] == "ray" and entry["actor"]
    assert entry["detail"]["old_fingerprint"] == result["old_fingerprint"]
    assert entry["detail"]["fingerprint"] == result["fingerprint"]


def test_a_container_stopped_during_rotation_comes_back_with_only_the_new_key(
        cli: Ptdesk, engine: Engine, tmp_path: Path) -> None:
    cli.new("ssh", "--name", "up", "--cpus", "1")
    cli.new("ssh", "--name", "down", "--cpus", "1")
    made = add(cli, "tom")
    old = keep_copy(made["identity_file"], tmp_path / "tom-old" / "id_ed25519")
    cli.ok("grant", "tom", "up")
    cli.ok("grant", "tom", "down")
    cli.ok("stop", "down")

    result = cli.json("collab", "rotate", "tom")
    by_name = {c["name"]: c for c in result["containers"]}
    assert by_name["up"]["status"] == "rotated" and by_name["up"]["verified"]
    assert by_name["down"]["status"] == "rotated" and not by_name["down"]["verified"]
    # Whoever starts it next, the stopped container's file already holds the new key, not the old.
    text = authorized(engine, cli, "down")
    new_public = next(c for c in cli.json("collab", "ls") if c["name"] == "tom")["public_key"]
    assert new_public.split()[1] in text and made["public_key"].split()[1] not in text
    assert pending_of(cli, "tom") == ["down"]  # proven only once it runs

    cli.ok("start", "down")
    new = Path(result["identity_file"])
    assert logs_in(cli, "down", new)
    assert not logs_in(cli, "down", old)
    assert logs_in(cli, "up", new) and not logs_in(cli, "up", old)
    assert pending_of(cli, "tom") == []
    finished = [e for e in cli.json("audit") if e["action"] == "collab-rotate-finish"]
    assert finished and finished[-1]["detail"]["verified"] is True


def test_a_retired_key_never_logs_in_again_when_sshd_is_slow_to_come_up(
        cli: Ptdesk, ws: Workstation, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rotation said the old key is retired in a stopped container; someone starts it, and the
    start event's probe finds sshd not up yet. Before, the old key was put back and logged in
    again; now the probe waits for sshd on the readiness schedule, and the old key stays out."""
    cid = cli.new("ssh", "--name", "late", "--cpus", "1")["id"]
    old = keep_copy(add(cli, "zed")["identity_file"], tmp_path / "zed-old" / "id_ed25519")
    cli.ok("grant", "zed", "late")
    cli.ok("stop", "late")
    result = cli.json("collab", "rotate", "zed")
    assert result["containers"][0]["status"] == "rotated"  # "the old key is removed" was promised here
    new = Path(result["identity_file"])

    real_login = rotation._login
    not_up_yet = iter([LoginResult(False, "unreachable: sshd is still starting")] * 2)

    def slow_sshd(w: Workstation, experiment: str, key_file: Path) -> LoginResult:
        # The first probes meet an sshd that is not listening yet (as right after a start event).
        return next(not_up_yet, None) or real_login(w, experiment, key_file)

    monkeypatch.setattr(rotation, "_login", slow_sshd)
    engine.start(cid)  # behind ptdesk's back, as a restart policy or `docker start` would
    outcome = rotation.finish_pending(ws, "late")["zed"]  # what the watcher's start event runs
    monkeypatch.undo()
    assert (outcome.status, outcome.verified) == ("rotated", True), outcome
    assert logs_in(cli, "late", new) and not logs_in(cli, "late", old)
    assert old.read_bytes() and pending_of(cli, "zed") == []


def test_a_new_key_that_cannot_be_proven_leaves_the_retired_key_out(
        cli: Ptdesk, ws: Workstation, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the proof never succeeds (sshd never answers in time), the retired key is not
    restored: the grant is reported pending with the new key only."""
    cid = cli.new("ssh", "--name", "mute", "--cpus", "1")["id"]
    made = add(cli, "yan")
    old = keep_copy(made["identity_file"], tmp_path / "yan-old" / "id_ed25519")
    cli.ok("grant", "yan", "mute")
    cli.ok("stop", "mute")
    cli.json("collab", "rotate", "yan")
    monkeypatch.setattr(rotation, "_login", lambda w, e, k: LoginResult(False, "unreachable: no answer"))
    monkeypatch.setattr(ws, "config", replace(ws.config, ready_timeout=1.0))
    engine.start(cid)
    outcome = rotation.finish_pending(ws, "mute")["yan"]
    monkeypatch.undo()
    assert outcome.status == "pending" and "retired key stays retired" in outcome.detail
    assert made["public_key"].split()[1] not in authorized(engine, cli, "mute")
    wait_until(lambda: attempt(cli, "mute", old).detail.startswith("refused"), timeout=60,
               message="sshd to answer (and refuse the retired key)")
    assert pending_of(cli, "yan") == ["mute"]


def test_a_person_who_brought_their_own_key_is_rotated_in_one_step(
        cli: Ptdesk, engine: Engine, keygen: Callable[[str], Path]) -> None:
    """Before, `collab rotate` refused them, and its workaround (rm, add, grant) locked them out in
    between. Now `--pubkey NEW.pub` swaps the key in one atomic render in every container."""
    old, new = keygen("pia-old"), keygen("pia-new")
    cli.new("ssh", "--name", "run", "--cpus", "1")
    cli.new("ssh", "--name", "rest", "--cpus", "1")
    add(cli, "pia", "--pubkey", f"{old}.pub")
    cli.ok("grant", "pia", "run")
    cli.ok("grant", "pia", "rest")
    cli.ok("stop", "rest")
    assert logs_in(cli, "run", old)

    result = cli.json("collab", "rotate", "pia", "--pubkey", f"{new}.pub")
    assert {c["name"]: c["status"] for c in result["containers"]} == {"run": "rotated", "rest": "rotated"}
    assert result["identity_file"] is None
    assert logs_in(cli, "run", new) and not logs_in(cli, "run", old)
    cli.ok("start", "rest")
    assert logs_in(cli, "rest", new) and not logs_in(cli, "rest", old)
    people = {p["name"]: p for p in cli.json("collab", "ls")}
    assert people["pia"]["pending"] == [] and people["pia"]["fingerprint"] == result["fingerprint"]
    # The wrong way round is one clear line: a person whose key ptdesk made gets one made again.
    add(cli, "raj")
    line = cli.fails("collab", "rotate", "raj", "--pubkey", f"{new}.pub")[0]
    assert "ptdesk made 'raj'" in line


def _sshd_pid(engine: Engine, container: str) -> int:
    top = engine.api.top(container)
    column = top["Titles"].index("CMD")
    rows = [row for row in top["Processes"] if "sshd" in row[column] and "-D" in row[column]]
    assert rows, top
    return int(rows[0][top["Titles"].index("PID")])


def test_failures_injected_mid_rotation_never_lock_the_person_out(
        cli: Ptdesk, ws: Workstation, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = {name: cli.new("ssh", "--name", name, "--cpus", "1")["id"] for name in ("ok", "killed", "removed")}
    old = keep_copy(add(cli, "uma")["identity_file"], tmp_path / "uma-old" / "id_ed25519")
    for name in ids:
        cli.ok("grant", "uma", name)

    # Once the new key sits next to the old one everywhere, and before anything is proven:
    # kill the sshd of one container (it exits) and remove another with `docker rm -f`.
    real_login = rotation._login
    injected = []

    def login_with_failures(d: Workstation, experiment: str, key_file: Path) -> LoginResult:
        if not injected:
            injected.append(experiment)
            os.kill(_sshd_pid(engine, ids["killed"]), signal.SIGKILL)
            subprocess.run(["docker", "rm", "-f", ids["removed"]], check=True, capture_output=True)
            wait_until(lambda: not engine.inspect(ids["killed"])["State"]["Running"], timeout=30,
                       message="the container whose sshd was killed to exit")
        return real_login(d, experiment, key_file)

    monkeypatch.setattr(rotation, "_login", login_with_failures)
    rc, out, err = cli.run("collab", "rotate", "uma", "--json")
    monkeypatch.undo()
    result = json.loads(out)
    by_name = {c["name"]: c for c in result["containers"]}
    assert by_name["ok"]["status"] == "rotated" and by_name["ok"]["verified"]
    assert by_name["killed"]["status"] == "pending" and "old key stays valid" in by_name["killed"]["detail"]
    assert by_name["removed"]["status"] != "rotated"
    # Non-zero, and the one line says where it is unfinished.
    assert rc != 0 and "killed" in err and "removed" in err and "ok (" not in err
    new = Path(result["identity_file"])

    # Everywhere that still exists, one of the two keys gets in: on "ok" the new one; on "killed",
    # started again behind ptdesk's back (so nothing finished the rotation there), both still do.
    assert logs_in(cli, "ok", new) and not logs_in(cli, "ok", old)
    engine.start(ids["killed"])
    bound = engine.published_port(ids["killed"], "22/tcp")
    assert bound
    host_key = cli.listed()["killed"]["ssh"]["known_hosts"].split(None, 1)[1]

    def at_killed(key: Path) -> LoginResult:
        return try_login(cli.config.connect_host, bound[1], "ptdesk", key, host_key)

    wait_until(lambda: at_killed(old).ok, timeout=60, message="the old key to log in again")
    assert at_killed(new).ok
    # The removed one was released by the CLI's reconciliation (its grants with it).
    assert "removed" not in cli.listed()

    # Running rotate again finishes the job instead of starting another rotation.
    again = cli.json("collab", "rotate", "uma")
    assert again["resumed"] is True and again["fingerprint"] == result["fingerprint"]
    assert {c["name"]: (c["status"], c["verified"]) for c in again["containers"]} == \
        {"ok": ("rotated", True), "killed": ("rotated", True)}
    assert at_killed(new).ok and at_killed(old).detail.startswith("refused")
    assert pending_of(cli, "uma") == []
    assert not (new.parent / collab.PREVIOUS).exists()


# --- bad input ----------------------------------------------------------------------------------


def test_bad_input_is_one_clear_line_and_changes_nothing(boxes: dict, module_desk: Ptdesk, tmp_path: Path,
                                                         keygen: Callable[[str], Path]) -> None:
    own = keygen("vic")
    add(module_desk, "vic", "--pubkey", f"{own}.pub")
    add(module_desk, "wes")
    before = module_desk.json("collab", "ls")
    bad_key = tmp_path / "bad.pub"
    bad_key.write_text("ssh-ed25519 not-base64!!\n")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    rsa = tmp_path / "rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(rsa)], check=True)
    cases = [
        (("grant", "nobody", "m1"), "No collaborator named 'nobody'"),
        (("grant", "wes", "nope"), "No experiment named 'nope'"),
        (("revoke", "wes", "nope"), "No experiment named 'nope'"),
        (("revoke", "wes", "m1"), "'wes' has no access to 'm1'"),
        (("grant", "wes", "nb"), "jupyter experiment"),
        (("revoke", "wes", "nb"), "jupyter experiment"),
        (("collab", "add", "wes"), "already exists"),
        (("collab", "add", "xan", "--pubkey", bad_key), "malformed"),
        (("collab", "add", "xan", "--pubkey", f"{rsa}.pub"), "not accepted"),
        (("collab", "add", "xan", "--pubkey", tmp_path / "missing.pub"), "cannot be read"),
        (("collab", "add", "xan", "--pubkey", f"{own}.pub"), "already belongs to collaborator 'vic'"),
        (("collab", "add", "Bad Name"), "not a valid collaborator name"),
        (("collab", "add", "xan", "--expires", "soon"), "is not an expiry"),
        (("collab", "add", "xan", "--expires", "2001-01-01"), "already past"),
        (("collab", "rm", "nobody"), "No collaborator named 'nobody'"),
        (("collab", "rotate", "nobody"), "No collaborator named 'nobody'"),
        (("collab", "rotate", "vic"), "brought their own key"),
        (("collab", "export", "nobody", tmp_path / "x"), "No collaborator named 'nobody'"),
        (("collab", "export", "wes", shared), "can be read by other users"),
        (("collab", "export", "wes", tmp_path / "x", "--dest", "for-wes"), "is not absolute"),
    ]
    for args, expected in cases:
        lines = module_desk.fails(*args)
        assert expected in lines[0], (args, lines)
    assert module_desk.json("collab", "ls") == before
    assert not (module_desk.home / "keys" / "collab" / "xan").exists()
    assert not (tmp_path / "x").exists()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755 and not any(shared.iterdir())
