"""Per-person accounts without an engine: uids, the files ptdesk renders, sessions and attribution."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ptdesk.core.access import accounts, sessions
from ptdesk.core.access.authorized_keys import CONTAINER_USER, GrantedKey, render_account_files, render_authorized_keys
from ptdesk.core.base import keys
from ptdesk.core.base.gpu_models import GpuProcess, GpuSample, GpuSnapshot
from ptdesk.core.gpu.procmap import attribute
from ptdesk.core.store.state import CollaboratorRecord, ExperimentRecord, Store
from ptdesk.errors import InvalidInput

A = "a" * 64
B = "b" * 64


def person(store: Store, name: str) -> None:
    public = keys.generate(f"{name}@x").public_line
    store.insert_collaborator(CollaboratorRecord(name=name, public_key=public, fingerprint=keys.fingerprint(public),
                                                 created=time.time()))


def test_collaborator_uids_never_collide_with_the_owner_and_are_never_given_twice(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    first, last = accounts.uid_range(1000)
    assert first > 60_000 and last < 2**31 - 1 and not first <= 1000 <= last
    assert accounts.uid_range(1001)[0] > last  # another owner's range does not overlap
    for name in ("ann", "bob"):
        person(store, name)
    ann, bob = (accounts.account_uid(store, 1000, n) for n in ("ann", "bob"))
    assert (ann, bob) == (first, first + 1)
    assert accounts.account_uid(store, 1000, "ann") == ann  # kept once given
    store.delete_collaborator("bob")  # bob's files in a workspace still carry bob's uid ...
    person(store, "cat")
    assert accounts.account_uid(store, 1000, "cat") == first + 2  # ... so cat never gets it
    assert store.account_map() == {ann: "ann", first + 2: "cat"}
    store.close()


@pytest.mark.parametrize("name", ["root", "ptdesk", "sshd", "nobody", "ptdesk-login"])
def test_a_system_accounts_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        accounts.check_account_name(name)


def test_each_account_gets_only_its_own_key_lines() -> None:
    owner = keys.generate("o").public_line
    ann, bob = keys.generate("a").public_line, keys.generate("b").public_line
    files = render_account_files(owner, (), [GrantedKey("ann", ann, None), GrantedKey("bob", bob, 1.9e9)])
    assert files[CONTAINER_USER] == render_authorized_keys(owner)  # the owner's file as at launch
    assert ann.split()[1] in files["ann"] and bob.split()[1] not in files["ann"]
    assert 'expiry-time="' in files["bob"] and "ptdesk-collaborator:bob" in files["bob"]
    assert accounts.render_accounts([("ann", 1_910_000_001)]) == "ann 1910000001\n"


def proc_tree(root: Path, pid: int, comm: str, cmdline: str, cgroup: str) -> None:
    folder = root / str(pid)
    folder.mkdir(parents=True)
    (folder / "comm").write_text(comm + "\n")
    (folder / "cmdline").write_text(cmdline.replace(" ", "\0") if comm != "sshd" else cmdline + "\0")
    (folder / "cgroup").write_text(cgroup)


def test_one_pass_over_proc_finds_who_is_logged_in_where(tmp_path: Path) -> None:
    in_a, in_b = f"0::/system.slice/docker-{A}.scope\n", f"0::/docker/{B}\n"
    proc_tree(tmp_path, 10, "sshd", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", in_a)
    proc_tree(tmp_path, 11, "sshd", "sshd: ann [priv]", in_a)
    proc_tree(tmp_path, 12, "sshd", "sshd: ann@pts/0", in_a)
    proc_tree(tmp_path, 13, "sshd", "sshd: ptdesk@notty", in_a)
    proc_tree(tmp_path, 14, "sshd", "sshd: ann@notty", in_a)  # a second session: named once
    proc_tree(tmp_path, 15, "bash", "sshd: eve@pts/1", in_a)  # a process that only calls itself sshd
    proc_tree(tmp_path, 16, "sshd", "sshd: /usr/sbin/sshd -D [listener]", in_b)  # up, nobody in
    proc_tree(tmp_path, 17, "sshd", "sshd: bob@pts/0", "0::/user.slice\n")  # the host's own sshd
    assert sessions.scan([A, B, "c" * 64], tmp_path) == {A: ("ann", "ptdesk"), B: (), "c" * 64: None}


def running(root: Path, pid: int, name: str, uids: tuple[int, int, int, int], cgroup: str | None) -> None:
    """A process as /proc shows it: its status (name, real/effective/saved/filesystem uid) and cgroup."""
    folder = root / str(pid)
    folder.mkdir(parents=True)
    (folder / "status").write_text(f"Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\n"
                                   f"Uid:\t{uids[0]}\t{uids[1]}\t{uids[2]}\t{uids[3]}\nGid:\t0\t0\t0\t0\n")
    if cgroup is not None:
        (folder / "cgroup").write_text(cgroup)


def test_one_pass_over_proc_finds_which_accounts_run_anything_where(tmp_path: Path) -> None:
    """The revocation backstop's look at every experiment (each reconcile): a collaborator uid is
    seen whichever of its uids it runs as; a container whose sshd is not visible here is unknown
    (None: the engine is asked), never "nobody runs anything"."""
    accounts_range = range(accounts.UID_BASE, accounts.UID_LAST + 1)
    ann, bob, eve = accounts.UID_BASE + 1, accounts.UID_BASE + 2, accounts.UID_BASE + 3
    c = "c" * 64
    in_a, in_b, in_c = f"0::/system.slice/docker-{A}.scope\n", f"0::/docker/{B}\n", f"0::/docker/{c}\n"
    running(tmp_path, 10, "sshd", (0, 0, 0, 0), in_a)  # A's listener: A's processes are visible here
    running(tmp_path, 11, "sleep", (ann, ann, ann, ann), in_a)  # what a revoked person left running
    running(tmp_path, 12, "sh", (1000, bob, 1000, bob), in_a)  # an effective uid counts as much
    running(tmp_path, 13, "python", (1000, 1000, 1000, 1000), in_a)  # the owner's: no collaborator
    running(tmp_path, 14, "sshd", (0, 0, 0, 0), in_b)  # B: up, nobody's processes in it
    running(tmp_path, 15, "sleep", (eve, eve, eve, eve), in_c)  # C: its sshd is not seen from here
    running(tmp_path, 16, "sleep", (eve, eve, eve, eve), "0::/user.slice\n")  # the host's own
    running(tmp_path, 17, "sleep", (eve, eve, eve, eve), None)  # ended while the pass looked
    assert sessions.account_uids([A, B, c], accounts_range, tmp_path) == {A: {ann, bob}, B: frozenset(), c: None}
    assert sessions.account_uids([], accounts_range, tmp_path) == {}


def test_a_gpu_process_names_the_person_whose_account_runs_it(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    store = Store(tmp_path / "state.db")
    person(store, "ann")
    ann = accounts.account_uid(store, 1000, "ann")
    store.insert_experiment(store.conn, ExperimentRecord(
        name="bert", kind="ssh", owner="alice", image="i", status="running", created=0.0, container_id=A))
    for pid, uid, cid in ((10, ann, A), (11, 1000, A), (12, ann, B)):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_text(f"0::/docker/{cid}\n")
        (proc / str(pid) / "status").write_text(f"Name:\tpython\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    procs = tuple(GpuProcess(pid=p, used_memory=1) for p in (10, 11, 12))
    snap = GpuSnapshot(True, None, "580", (GpuSample(0, "GPU-0", "H100", processes=procs),))
    got = {p.pid: (p.experiment, p.owner, p.person) for p in
           attribute(snap, None, "default", store=store, proc_root=proc).gpus[0].processes}
    # In this home's experiment ann's uid is ann; in a container this home did not make, the
    # same number means nothing, so nobody is named.
    assert got == {10: ("bert", "alice", "ann"), 11: ("bert", "alice", "alice"), 12: (None, None, None)}
    store.close()
