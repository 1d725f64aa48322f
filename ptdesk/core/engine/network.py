"""The network experiments run on: one bridge on which containers cannot reach each other.

On Docker's default bridge every container can open every other container's ports by its bridge
address, whatever address the ports are published on: one experiment's code could talk to another
person's Jupyter or sshd directly. ptdesk puts every experiment it launches on its own user-defined
bridge, `ptdesk-experiments`, made with `com.docker.network.bridge.enable_icc=false` (the engine's
iptables rules then drop traffic between containers on it). Published ports keep working: the
engine reaches each container from the host side. Outbound traffic (pip, datasets) is untouched.

It is made on demand, at the first launch that needs it, shared by every ptdesk on the engine, and
never removed (it costs nothing while unused, and removing it would race with launches). The
engine's duplicate-name check is best effort, so making it happens under an engine-held lock
(gpulock.NETWORK_LOCK): launches that find it missing at the same moment take turns, and the
second finds the first one's. A network of that name that lets containers talk to each other is
refused, not used.
"""

from __future__ import annotations

from ptdesk.core.engine.client import Engine
from ptdesk.core.engine.locks import NETWORK_LOCK, engine_lock
from ptdesk.errors import PtdeskError

NETWORK_NAME = "ptdesk-experiments"
ICC = "com.docker.network.bridge.enable_icc"
LABEL_NETWORK = "ptdesk.network"


def experiments_network(engine: Engine, image: str) -> str:
    """The id of the experiments' network, made if the engine has none. `image`: one the engine
    has (the launch's own), for the lock's container."""
    found = engine.networks_named(NETWORK_NAME)
    if not found:
        with engine_lock(engine, NETWORK_LOCK, image):
            found = engine.networks_named(NETWORK_NAME)  # made by whoever held the lock before us?
            if not found:
                engine.create_network(NETWORK_NAME, options={ICC: "false"}, labels={LABEL_NETWORK: "experiments"})
                found = engine.networks_named(NETWORK_NAME)
    if not found:
        raise PtdeskError(f"The network {NETWORK_NAME} could not be made.", "Check the engine's log (dockerd).")
    # Several are left only by an older ptdesk that raced without the lock: all agree on the oldest.
    network = min(found, key=lambda n: (n.get("Created") or "", n.get("Id") or ""))
    _check_isolated(network)
    return network["Id"]


def _check_isolated(network: dict) -> None:
    if network.get("Driver") != "bridge" or (network.get("Options") or {}).get(ICC) != "false":
        raise PtdeskError(
            f"The network {NETWORK_NAME} exists but lets containers reach each other "
            f"({ICC} is not false); ptdesk will not put experiments on it.",
            f"Remove it when no container uses it (docker network rm {NETWORK_NAME}); ptdesk makes it again.")
