"""Experiments cannot reach each other: on the default bridge, code in one SSH experiment could open
another experiment's Jupyter by its bridge address even with bind_address 127.0.0.1. ptdesk puts
them on its own bridge without inter-container traffic; published ports keep working."""

from __future__ import annotations

import socket

from conftest import Ptdesk

from ptdesk.core.engine.client import Engine
from ptdesk.core.engine.network import ICC, NETWORK_NAME
from tests.support.helpers import BASE_IMAGE, require_image


def _networks(engine: Engine, container_id: str) -> dict[str, dict]:
    return engine.inspect(container_id)["NetworkSettings"]["Networks"]


def test_one_experiment_cannot_reach_another_on_its_bridge_address(cli: Ptdesk, engine: Engine) -> None:
    ssh = cli.new("ssh", "--name", "attacker")
    lab = cli.new("jupyter", "--name", "victim")  # ready: its published port answered with the token
    target = next(iter(_networks(engine, lab["id"]).values()))["IPAddress"]

    # The host reaches it there (so the port is open and listening on that address)...
    with socket.create_connection((target, 8888), timeout=5):
        pass
    # ...but code in another experiment does not.
    rc, out = engine.exec(ssh["id"], ["timeout", "5", "bash", "-c", f"echo > /dev/tcp/{target}/8888"])
    assert rc != 0, f"the Jupyter of another experiment answered from inside the SSH one: {out!r}"
    for experiment in (ssh, lab):
        assert list(_networks(engine, experiment["id"])) == [NETWORK_NAME]
    assert engine.networks_named(NETWORK_NAME)[0]["Options"][ICC] == "false"

    # Published ports keep working, on the configured address.
    assert cli.listed()["victim"]["status"] == "running"
    with socket.create_connection((cli.config.bind_address, lab["jupyter"]["port"]), timeout=5):
        pass


def test_launches_making_the_network_at_once_end_up_on_one(engine: Engine, monkeypatch) -> None:
    """The network is made on demand: several first launches at the same moment must agree on one
    (the engine's duplicate check is best effort; they take turns under the engine-held lock)."""
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from ptdesk.core.engine import network

    require_image(engine, BASE_IMAGE)
    name = f"ptdesk-test-net-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(network, "NETWORK_NAME", name)

    def first_launch(_: int) -> str:  # each its own connection, as separate ptdesk processes have
        own = Engine.connect()
        try:
            return network.experiments_network(own, BASE_IMAGE)
        finally:
            own.close()

    try:
        with ThreadPoolExecutor(6) as pool:
            ids = set(pool.map(first_launch, range(6)))
        found = engine.networks_named(name)
        assert len(ids) == 1 and [n["Id"] for n in found] == list(ids)
        assert found[0]["Options"][ICC] == "false"
    finally:
        for net in engine.networks_named(name):
            engine.remove_network(net["Id"])
