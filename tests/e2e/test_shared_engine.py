"""Two users, one engine: each has their own PTDESK_HOME (store, keys) and the same instance, as on a
shared workstation. Each sees the other's containers, read-only, and never takes them over: no
adoption, no stop/start/rm/grant/cull, no GPU that the other's container holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pynvml
import pytest

from ptdesk.core.access.authorized_keys import AUTHORIZED_KEYS_PATH
from ptdesk.core.access.sshcheck import try_login
from ptdesk.core.engine.client import Engine
from tests.support import nvml_scenarios  # noqa: E402
from tests.support.helpers import wait_until
from tests.support.lifecycle_support import record

if TYPE_CHECKING:
    from tests.e2e.conftest import Ptdesk


@pytest.fixture
def alice(cli: Ptdesk) -> Ptdesk:
    return type(cli)({**cli.env, "SUDO_USER": "alice"})


@pytest.fixture
def bob(cli: Ptdesk, tmp_path: Path) -> Ptdesk:
    """Bob's own ptdesk: another home, the same instance (its containers go with ptdesk_env's)."""
    return type(cli)({**cli.env, "SUDO_USER": "bob", "PTDESK_HOME": str(tmp_path / "bob-home")})


def refused(user: Ptdesk, *args: object) -> str:
    line = user.fails(*args)[0]
    assert "belongs to bob's ptdesk" in line, line
    return line


def test_another_users_container_is_listed_read_only_and_never_taken_over(
        alice: Ptdesk, bob: Ptdesk, engine: Engine) -> None:
    box = bob.new("ssh", "--name", "bob-box")
    keys_before = engine.read_file(box["id"], AUTHORIZED_KEYS_PATH)

    # Alice sees it: name, kind, owner, status, GPUs; nothing to connect with, and it is no orphan.
    seen = alice.listed()["bob-box"]
    assert seen["foreign"] is True and "orphan" not in seen
    assert (seen["kind"], seen["owner"], seen["status"], seen["gpus"]) == ("ssh", "bob", "running", [])
    assert seen["ssh"] is None
    assert "(other user)" in alice.ok("ls")
    report = alice.json("reconcile")
    assert report["adopted"] == [] and report["orphans"] == []
    assert alice.records() == set()

    # Nothing of Bob's reached Alice's home: no record, no secrets folder, no key made for "bob".
    assert not alice.experiment_folder("bob-box").exists()
    assert not (alice.home / "keys" / "users" / "bob").exists()

    refused(alice, "stop", "bob-box")
    refused(alice, "start", "bob-box")
    refused(alice, "rm", "bob-box")
    assert "ptdesk rm --force bob-box" in alice.fails("rm", "bob-box")[-1]  # the way out, for a team lead
    alice.ok("collab", "add", "carol")
    assert "bob-box" in alice.fails("grant", "carol", "bob-box")[0]
    assert alice.json("cull", "--idle", "1s")["experiments"] == []
    assert engine.inspect(box["id"])["State"]["Running"]
    assert engine.read_file(box["id"], AUTHORIZED_KEYS_PATH) == keys_before
    assert alice.records() == set()

    # Bob is not locked out: his own key still logs in with his pinned host key.
    host_key = record(bob.home, "bob-box")["host_public_key"]
    login = try_login("127.0.0.1", box["ssh"]["port"], "ptdesk", Path(box["ssh"]["identity_file"]), host_key)
    assert login.ok, login.detail
    # Bob's ls shows who is logged in: his login is over once sshd has closed it.
    wait_until(lambda: bob.listed()["bob-box"] == box, timeout=10, message="bob's login to be over")

    # A team lead may clean up with --force; Bob's ptdesk then releases its own records.
    alice.ok("rm", "--force", "bob-box")
    assert engine.try_inspect(box["id"]) is None
    assert bob.listed() == {}
    wait_until(lambda: record(bob.home, "bob-box") is None, timeout=5, message="bob's record released")


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with two GPUs (NVML replaced at the pynvml function boundary)."""
    for name, fn in nvml_scenarios.healthy(pids=(999_999_4,), gpus=2).functions().items():
        monkeypatch.setattr(pynvml, name, fn)


def test_a_gpu_held_by_another_users_container_is_refused_before_anything_is_created(
        alice: Ptdesk, engine: Engine, sleeper, two_gpus) -> None:
    bobs = sleeper("bob-train", owner="bob", gpus="0", devices=("0",))
    for request in ("0", "all"):
        line = alice.fails("new", "ssh", "--name", "alice-gpu", "--gpus", request, "--json")[0]
        assert "GPU 0 is held by experiment 'bob-train'" in line, line
        # Refused while reserving: no container was ever made, no record, no secrets.
        assert [c["Id"] for c in engine.list_managed(alice.instance)] == [bobs]
        assert alice.records() == set()
        assert not alice.experiment_folder("alice-gpu").exists()
