"""CLI commands, one module per topic; each module exports its click commands in COMMANDS."""

from __future__ import annotations

import importlib

import click

# Topic modules; a module that is not there yet is skipped, so topics can land one at a time.
_TOPICS = ("containers", "images", "doctor", "gpus", "collab", "lifecycle", "audit")


def _collect() -> list[click.Command]:
    commands: list[click.Command] = []
    for topic in _TOPICS:
        try:
            module = importlib.import_module(f"ptdesk.commands.{topic}")
        except ModuleNotFoundError as exc:
            if exc.name != f"ptdesk.commands.{topic}":
                raise
            continue
        commands.extend(module.COMMANDS)
    return commands


COMMANDS = _collect()
