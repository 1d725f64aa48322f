"""Collaborators and grants, end to end: real CLI, engine, sshd, paramiko and OpenSSH.

Two SSH experiments and one Jupyter experiment (module-scoped) serve the tests that only grant and
revoke; each test uses collaborators of its own, so they do not disturb each other. Key rotation
has a suite of its own (test_rotation.py).
"""

from __future__ import annotations

import json
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ptdesk.core.collaborators import grants
from ptdesk.core.engine.client import Engine
from ptdesk.core.workstation import Workstation

if TYPE_CHECKING:
    from conftest import Ptdesk  # tests/e2e/conftest.py
from tests.support.collab_support import (
    add,
    assert_private,
    authorized,
    keep_copy,
    logs_in,
    openssh,
)

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
        assert result.stdout.strip() == "ann"  # her own account, not the owner's
    config = (out / "ssh_config").read_text()
    for word in ("HostName", "Port", "User ann", "IdentityFile", "UserKnownHostsFile", "IdentitiesOnly yes"):
        assert config.count(word) == 2, word
    assert len((out / "known_hosts").read_text().splitlines()) == 2
    # The expiry reaches sshd as its own option (in UTC), and sshd accepts the line.
    assert 'expiry-time="' in authorized(engine, module_desk, "m1", "ann")
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
    assert logs_in(module_desk, "m1", private, "bea")
    assert not logs_in(module_desk, "m2", private, "bea")  # only where granted
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
    command = printed.replace("ssh -F", "ssh -o BatchMode=yes -F", 1).replace("EXPERIMENT", "m1 id -un")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "kim"


def test_revoke_refuses_new_logins_at_once(boxes: dict, module_desk: Ptdesk, tmp_path: Path) -> None:
    key = Path(add(module_desk, "cid")["identity_file"])
    module_desk.ok("grant", "cid", "m1")
    module_desk.ok("grant", "cid", "m2")
    assert logs_in(module_desk, "m1", key, "cid")
    module_desk.ok("revoke", "cid", "m1")
    # No waiting: the very next login is refused, and the other grant still works.
    assert not logs_in(module_desk, "m1", key, "cid")
    assert logs_in(module_desk, "m2", key, "cid")
    # The owner is never affected.
    owner_key = Path(boxes["m1"]["ssh"]["identity_file"])
    assert logs_in(module_desk, "m1", owner_key)
    assert_private(key)


def test_remove_revokes_everywhere_and_deletes_the_keys(boxes: dict, module_desk: Ptdesk, engine: Engine) -> None:
    made = add(module_desk, "dov")
    key = keep_copy(made["identity_file"], module_desk.home.parent / "dov-copy" / "id_ed25519")
    module_desk.ok("grant", "dov", "m1")
    module_desk.ok("grant", "dov", "m2")
    assert logs_in(module_desk, "m2", key, "dov")
    module_desk.ok("collab", "rm", "dov")
    assert not logs_in(module_desk, "m1", key, "dov") and not logs_in(module_desk, "m2", key, "dov")
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
            grants.grant(ws, name, "m2")
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
    for name in names:
        assert made[name]["public_key"].split()[1] in authorized(engine, module_desk, "m2", name)
        assert logs_in(module_desk, "m2", Path(made[name]["identity_file"]), name)


def test_expired_key_is_refused_by_sshd(boxes: dict, module_desk: Ptdesk, module_core: Workstation) -> None:
    key = Path(add(module_desk, "eve", "--expires", "1d")["identity_file"])
    module_desk.ok("grant", "eve", "m1")
    assert logs_in(module_desk, "m1", key, "eve")
    # Move the expiry into the past (as if a day went by) and re-render from state.
    module_core.store.update_collaborator("eve", expires=1_000_000_000.0)
    with grants.container_lock(module_core.config, "m1"):
        grants.reinstall(module_core, "m1")
    assert not logs_in(module_desk, "m1", key, "eve")


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
        (("collab", "rotate", "wes", "--pubkey", f"{own}.pub"), "ptdesk made wes's key"),  # was 'wes''s
        (("collab", "export", "nobody", tmp_path / "x"), "No collaborator named 'nobody'"),
        (("collab", "export", "wes", shared), "can be read by other users"),
        (("collab", "export", "wes", tmp_path / "x", "--dest", "for-wes"), "is not absolute"),
    ]
    for args, expected in cases:
        lines = module_desk.fails(*args)
        assert expected in lines[0], (args, lines)
    # Nothing typed is malformed: exit 1, as `ptdesk ssh` on a Jupyter experiment (README: 2 is for malformed).
    assert module_desk.run("grant", "wes", "nb")[0] == 1
    assert module_desk.json("collab", "ls") == before
    assert not (module_desk.home / "keys" / "collab" / "xan").exists()
    assert not (tmp_path / "x").exists()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755 and not any(shared.iterdir())
