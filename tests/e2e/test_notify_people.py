"""Events that reach people where they are, through real receivers (a local SMTP server and a
local HTTP webhook, sent by apprise): a reservation about to take an experiment's GPU — its owner
by e-mail, its collaborator in their real OpenSSH session and on the route the owner set up for
them; the person's own reservation starting and ending; GPUs free that someone asked to hear
about (`ptdesk notify --when-free`); a GPU driver changed under a running experiment. Each said
once with two watchers of the box. NVML is the fixture's; the GPUs an experiment holds are
recorded as a launch would record them (tests/support/lifecycle_support.hold_gpus)."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pynvml
import pytest

from ptdesk.core.access.sessions import tell_everyone
from ptdesk.core.gpu_desk import GpuDesk
from ptdesk.core.sharing import booking
from ptdesk.core.workstation import Workstation
from tests.support.accounts_support import person
from tests.support.helpers import run_cli, wait_until
from tests.support.lifecycle_support import hold_gpus
from tests.support.nvml_scenarios import Scenario, idle
from tests.support.receivers import smtp_server, webhook_server


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    """Three idle GPUs, as NVML says (the driver version can be changed by the test)."""

    def install(scenario: Scenario) -> Scenario:
        for name, fn in scenario.functions().items():
            monkeypatch.setattr(pynvml, name, fn)
        return scenario

    return install(idle(3))


def in_minutes(minutes: float) -> str:
    """A start as a person types it (minute precision, the workstation's time zone)."""
    return datetime.fromtimestamp(time.time() + minutes * 60).strftime("%Y-%m-%dT%H:%M")


def add_route(cli, url: str, *args: str) -> str:
    """`ptdesk notify add ...` with the URL on stdin, as a person pipes it in."""
    code, out, err = run_cli(["notify", "add", *args], cli.env, input=url + "\n")
    assert code == 0, err
    return out


def watchers(cli) -> tuple[Workstation, Workstation]:
    first = Workstation(cli.config)
    return first, first.fork()


def test_a_reservation_about_to_take_a_gpu_warns_owner_and_collaborator_once_where_they_are(
        cli, gpus, tmp_path: Path) -> None:
    cli.new("ssh", "--name", "shared", "--gpus", "none")
    hold_gpus(cli.home, "shared", [1])
    bob = person(cli, "bob", tmp_path, "shared")
    session = subprocess.Popen(["ssh", "-tt", "-F", str(bob.config), "-o", "BatchMode=yes", "shared",
                                "echo READY; sleep 120"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
    seen: list[bytes] = []
    threading.Thread(target=lambda: seen.extend(iter(lambda: session.stdout.read1(4096), b"")), daemon=True).start()
    first, second = watchers(cli)
    try:
        with smtp_server() as (mail_url, mails), webhook_server() as (hook_url, posts):
            add_route(cli, mail_url, "mail", "--events", "reservation")
            added = add_route(cli, hook_url, "bob-chat", "--for", "bob")
            assert "bob's route 'bob-chat'" in added and "expiry, cull, reservation" in added
            wait_until(lambda: b"READY" in b"".join(seen), timeout=30, message="bob's session")
            assert GpuDesk(first).heads_up() == []  # nobody has reserved GPU 1: nothing to say
            booking.reserve(first, "1", in_minutes(6), "1h", owner="ann")
            said = [*GpuDesk(first).heads_up(), *GpuDesk(second).heads_up(), *GpuDesk(first).heads_up()]
            assert [s.notice.title for s in said] == ["ptdesk: 'shared' runs on GPU 1, reserved by ann"]
            assert sorted((d.route, d.ok) for d in said[0].deliveries) == [("bob-chat", True), ("mail", True)]
            wait_until(lambda: len(mails) == 1 and len(posts) == 1, timeout=15, message="the mail and the post")
            assert mails[0]["Subject"] == "ptdesk: 'shared' runs on GPU 1, reserved by ann"
            assert "it will be stopped at" in posts[0]["message"] and "ptdesk start shared" in posts[0]["message"]

            def shown() -> str | None:
                out = b"".join(seen).decode(errors="replace")
                return out if "which ann has reserved" in out else None

            text = wait_until(shown, timeout=15, message="the warning in bob's terminal")
            assert "Broadcast message from ptdesk" in text and "save your work" in text
            assert len(mails) == 1 and len(posts) == 1  # sending is done when a round returns: none came later
        # When the reservation starts, the box's service writes to every terminal in it, each as
        # the account that owns it (root in the container may not write to bob's).
        container = first.store.experiment("shared").container_id
        assert tell_everyone(first.engine, container, "GPU 1 reserved by ann has started", time.time()) == 1
        wait_until(lambda: b"reserved by ann has started" in b"".join(seen), timeout=15,
                   message="the start's warning in bob's terminal")
    finally:
        session.kill()
        session.wait()
        first.close()
        second.close()


def test_own_reservations_starting_and_ending_soon_are_said_once_by_mail(cli, gpus, engine) -> None:
    first, second = watchers(cli)
    try:
        with smtp_server() as (url, mails):
            add_route(cli, url, "mail")
            booking.reserve(first, "0", "now", "8m")
            booking.reserve(first, "2", in_minutes(7), "1h")
            booking.reserve(first, "1", in_minutes(30), "1h")  # not yet: nothing said of it
            said = [*GpuDesk(first).heads_up(), *GpuDesk(second).heads_up()]
            titles = sorted(s.notice.title for s in said)
            assert len(titles) == 2
            assert titles[0].startswith("ptdesk: your reservation of GPU 0 ends at")
            assert titles[1].startswith("ptdesk: your reservation of GPU 2 starts at")
            wait_until(lambda: len(mails) == 2, timeout=15, message="two mails")
            assert sorted(m["Subject"] for m in mails) == titles
    finally:
        first.close()
        second.close()


def test_when_free_says_once_when_the_gpu_is_free_for_you(cli, gpus, engine) -> None:
    first, second = watchers(cli)
    try:
        with webhook_server() as (url, posts):
            add_route(cli, url, "hook", "--events", "gpu-free")
            ann = booking.reserve(first, "0", "now", "2h", owner="ann")
            code, _, err = cli.run("notify", "--when-free", "5")
            assert code == 2 and "There is no GPU 5" in err
            assert "You will hear once when GPU 0 on 'local' are free" in cli.ok("notify", "--when-free", "0")
            assert GpuDesk(first).tell_when_free() == []  # ann has it now: not free for us
            booking.end_now(first, ann.short_id, owner="ann")
            said = [*GpuDesk(first).tell_when_free(), *GpuDesk(second).tell_when_free()]
            assert [s.notice.title for s in said] == ["ptdesk: GPU 0 on 'local' is free"]
            assert GpuDesk(first).tell_when_free() == []  # said: the wish is done
            wait_until(lambda: posts, timeout=15, message="the post")
            assert len(posts) == 1 and "--gpus 0" in posts[0]["message"]
    finally:
        first.close()
        second.close()


def test_a_driver_changed_under_a_running_experiment_is_said_once(cli, gpus) -> None:
    cli.new("ssh", "--name", "trainer", "--gpus", "none")
    hold_gpus(cli.home, "trainer", [0])
    first, second = watchers(cli)
    try:
        with webhook_server() as (url, posts):
            add_route(cli, url, "hook", "--events", "driver")
            assert first.herald().round() == []  # the driver it runs with is noted, nothing said
            gpus.driver = "590.10.01"  # the driver was upgraded under it
            said = [*first.herald().round(), *second.herald().round(), *first.herald().round()]
            assert [s.notice.title for s in said] == ["ptdesk: the GPU driver changed under 'trainer'"]
            assert "590.10.01" in said[0].notice.body and "580.82.07" in said[0].notice.body
            wait_until(lambda: posts, timeout=15, message="the post")
            assert len(posts) == 1 and "ptdesk stop trainer && ptdesk start trainer" in posts[0]["message"]
    finally:
        first.close()
        second.close()
