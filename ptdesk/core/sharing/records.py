"""Engine calls for what a box shares on its engine (queue entries, reservations): listing by
label, creating a record, and re-making a never-started container with other devices.

Beside ptdesk.core.engine.client (the one place for everything else): the same translated errors, the same
low-level client, kept apart so that module stays readable.
"""

from __future__ import annotations

from collections.abc import Mapping

from ptdesk.core.engine.client import Engine
from ptdesk.core.engine.errors import translated_errors

# Copied from an inspect document's Config into a re-made container's create body.
_CONFIG_KEYS = ("Hostname", "User", "ExposedPorts", "Env", "Cmd", "Entrypoint", "WorkingDir", "StopSignal",
                "Tty", "OpenStdin", "AttachStdin", "AttachStdout", "AttachStderr")


def list_labelled(engine: Engine, labels: Mapping[str, str]) -> list[dict]:
    """Every container (running or not) carrying all of `labels`: one request."""
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    with translated_errors("Listing records", engine.where):
        return engine.api.containers(all=True, filters=filters)


def create_record(engine: Engine, name: str, image: str, labels: Mapping[str, str]) -> str:
    """A container that is never started: its labels are the record (no network, no command run)."""
    return engine.create(name=name, image=image, labels=dict(labels), command=["true"],
                         host_config={"network_mode": "none"})


def remake(engine: Engine, document: Mapping, name: str, labels: Mapping[str, str],
           host_changes: Mapping[str, object]) -> str:
    """Create `name` as a copy of the inspected container `document` (its image by id, its
    configuration, its networks) with `labels` and `host_changes` instead: what a never-started
    container is, made again with devices Docker cannot change afterwards."""
    config = document.get("Config") or {}
    body = {key: config[key] for key in _CONFIG_KEYS if config.get(key) is not None}
    body.update(Image=document["Image"], Labels=dict(labels),
                HostConfig={**(document.get("HostConfig") or {}), **host_changes})
    networks = (document.get("NetworkSettings") or {}).get("Networks") or {}
    body["NetworkingConfig"] = {"EndpointsConfig": {net: {} for net in networks}}
    return engine.create_from_config(name, body)

