"""CLI commands, one module per topic; each module exports its click commands in COMMANDS.

Topic modules are imported only when one of their commands runs (or for --help): importing the
Docker SDK alone costs a quarter of a second, which `ptdesk --version`, `ptdesk gpus` and the
dashboard's start should not pay.
"""

from __future__ import annotations

import importlib

import click

# Command name -> the topic module that defines it.
COMMAND_TOPICS: dict[str, str] = {
    "new": "containers", "ls": "listing", "logs": "containers", "stop": "containers",
    "start": "containers", "rm": "containers",
    "images": "images", "doctor": "doctor", "gpus": "gpus",
    "collab": "collab", "grant": "collab", "revoke": "collab", "audit": "audit",
    "watch": "lifecycle", "cull": "lifecycle", "reconcile": "lifecycle",
    "workstations": "workstations", "serve": "serve",
    "ssh-config": "ssh", "ssh": "ssh", "forward": "ssh",
    "env": "env",
    "queue": "sharing", "reserve": "sharing", "reservations": "sharing",
}
TOPICS = tuple(dict.fromkeys(COMMAND_TOPICS.values()))


def topic_commands(topic: str) -> list[click.Command]:
    return list(importlib.import_module(f"ptdesk.commands.{topic}").COMMANDS)


def load_command(name: str) -> click.Command | None:
    topic = COMMAND_TOPICS.get(name)
    if topic is None:
        return None
    return next((c for c in topic_commands(topic) if c.name == name), None)
