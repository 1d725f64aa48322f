"""The network experiments run on: one bridge on which containers cannot reach each other.

On Docker's default bridge every container can open every other container's ports by its bridge
address, whatever address the ports are published on: one experiment's code could talk to another
person's Jupyter or sshd directly. ptdesk puts every experiment it launches on its own user-defined
bridge, `ptdesk-experiments`, made with `com.docker.network.bridge.enable_icc=false` (the engine's
iptables rules then drop traffic between containers on it). Published ports keep working: the
engine reaches each container from the host side. Outbound traffic (pip, datasets) is untouched.

It is made on demand, at the first launch that needs it, shared by every ptdesk on the engine, and
never removed (it costs nothing while unused, and removing it would race with launches). A network
of that name that lets containers talk to each other is refused, not used.
"""

from __future__ import annotations

from ptdesk.core.engine import Engine
from ptdesk.errors import PtdeskError

NETWORK_NAME = "ptdesk-experiments"
ICC = "com.docker.network.bridge.enable_icc"
LABEL_NETWORK = "ptdesk.network"


def experiments_network(engine: Engine) -> str:
    """The id of the experiments' network, made if the engine has none."""
    found = engine.networks_named(NETWORK_NAME)
    if not found:
        made = engine.create_network(NETWORK_NAME, options={ICC: "false"}, labels={LABEL_NETWORK: "experiments"})
        found = engine.networks_named(NETWORK_NAME)
        # Two launches may have made one each at the same moment: all use the oldest, the others go.
        found.sort(key=lambda n: (n.get("Created") or "", n.get("Id") or ""))
        if made and found and found[0].get("Id") != made:
            engine.remove_network(made)
    if not found:
        raise PtdeskError(f"The network {NETWORK_NAME} could not be made.", "Check the engine's log (dockerd).")
    network = min(found, key=lambda n: (n.get("Created") or "", n.get("Id") or ""))
    _check_isolated(network)
    return network["Id"]


def _check_isolated(network: dict) -> None:
    if network.get("Driver") != "bridge" or (network.get("Options") or {}).get(ICC) != "false":
        raise PtdeskError(
            f"The network {NETWORK_NAME} exists but lets containers reach each other "
            f"({ICC} is not false); ptdesk will not put experiments on it.",
            f"Remove it when no container uses it (docker network rm {NETWORK_NAME}); ptdesk makes it again.")
