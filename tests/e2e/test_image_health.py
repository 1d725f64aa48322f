"""Every kind's image carries a HEALTHCHECK that turns `unhealthy` when its service stops answering,
and no setuid/setgid program (issue 20, finding 10; CIS Docker Benchmark 4.6/5.27 and 4.8).

The check under test is the image's own command; only its timing is shortened for the test, at
run time (a container's Healthcheck without a Test keeps the image's), so nothing here sleeps
through the image's minute-long interval. The service is stopped with SIGSTOP: it still holds its
port, so the kernel still accepts connections; only a check that waits for an answer notices.
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest

from ptdesk.core.base.models import LABEL_INSTANCE
from ptdesk.core.engine.client import Engine
from ptdesk.core.engine.files import FileSpec
from tests.support.helpers import JUPYTER_IMAGE, SSH_IMAGE, require_image, wait_until

FAST = {"Interval": 500_000_000, "Timeout": 3_000_000_000, "Retries": 1, "StartPeriod": 0}
SERVICES = {
    # sshd needs a host key; ptdesk places one at launch, here the image makes its own throwaway ones.
    "ssh": (SSH_IMAGE, ["sh", "-c", "ssh-keygen -A -q && mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e"],
            "sshd", "0"),
    # Its token comes from a file ptdesk places before the start (as here), never the environment.
    "jupyter": (JUPYTER_IMAGE, None, "jupyter", None),
}


def _health(engine: Engine, cid: str) -> str:
    return engine.api.inspect_container(cid)["State"].get("Health", {}).get("Status", "none")


@pytest.mark.parametrize("kind", list(SERVICES))
def test_the_image_turns_unhealthy_when_its_service_stops_answering(kind: str, engine: Engine,
                                                                    ptdesk_env: dict[str, str]) -> None:
    image, entrypoint, process, user = SERVICES[kind]
    require_image(engine, image)
    assert engine.api.inspect_image(image)["Config"]["Healthcheck"]["Test"][0] == "CMD"
    cid = engine.api.create_container(
        image, name=f"ptdesk-{ptdesk_env['PTDESK_INSTANCE']}-health-{uuid.uuid4().hex[:6]}", entrypoint=entrypoint,
        user=user, labels={LABEL_INSTANCE: ptdesk_env["PTDESK_INSTANCE"]}, healthcheck=FAST,
        host_config=engine.api.create_host_config(init=True, mem_limit="512m"))["Id"]
    if kind == "jupyter":
        engine.put_files(cid, "/etc/ptdesk", [FileSpec("jupyter_token", uuid.uuid4().hex.encode(), 0o444)])
    engine.start(cid)
    wait_until(lambda: _health(engine, cid) == "healthy", timeout=120, message=f"{kind} to be healthy")

    pids = [int(row[1]) for row in engine.api.top(cid, ps_args="-eo user,pid,args")["Processes"]
            if process in row[2] and "healthcheck" not in row[2] and "/dev/tcp" not in row[2]]
    assert pids, f"no {process} process in the container"
    for pid in pids:  # host PIDs: the test stops the service from outside, as a hang would
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _health(engine, cid) == "unhealthy", timeout=60, message=f"{kind} to turn unhealthy")
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    wait_until(lambda: _health(engine, cid) == "healthy", timeout=60, message=f"{kind} to be healthy again")


@pytest.mark.parametrize("image", [SSH_IMAGE, JUPYTER_IMAGE])
def test_no_setuid_or_setgid_program_is_left_in_the_image(image: str, engine: Engine) -> None:
    require_image(engine, image)
    found = engine.client.containers.run(image, entrypoint=["find", "/", "-xdev", "-type", "f", "-perm", "/6000"],
                                         user="0", remove=True, stdout=True, stderr=False)
    assert found.decode().split() == []
