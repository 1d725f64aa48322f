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
    "watch": "lifecycle", "cull": "lifecycle", "keep": "lifecycle", "reconcile": "lifecycle",
    "workstations": "workstations", "serve": "serve",
    "ssh-config": "ssh", "ssh": "ssh", "forward": "ssh",
    "env": "env", "notify": "notify",
    "queue": "sharing", "reserve": "sharing", "reservations": "sharing",
    "vscode": "vscode",
    "report": "report",
    "run": "jobs", "jobs": "jobs", "cancel": "jobs", "rerun": "jobs",
}
TOPICS = tuple(dict.fromkeys(COMMAND_TOPICS.values()))
# What `ptdesk --help` says of each command, so that it imports no command module (a test keeps
# these equal to each command's own help). A command missing here is imported to ask it.
COMMAND_SUMMARIES: dict[str, str] = {
    "audit": "Show the audit log, oldest first.",
    "cancel": "End job NAME (SIGINT, then SIGTERM and SIGKILL a grace apart), or take it out of the queue.",
    "collab": "People who may log in to your SSH experiments, and their keys.",
    "cull": "Stop idle experiments (workspaces and keys are kept; GPUs free after the hold).",
    "doctor": "Check the engine, GPU runtime, images, NVML, state and keys; exit 0 when ptdesk can launch.",
    "env": "What an experiment runs (ptdesk env NAME), changes since launch, and differences (env diff A B).",
    "forward": "Reach a server NAME runs on its own 127.0.0.1:PORT at 127.0.0.1:LOCAL here, until Ctrl-C.",
    "gpus": "Show every GPU, its load, and the processes on it with their container and owner.",
    "grant": "Let collaborator NAME log in to the SSH experiment EXPERIMENT.",
    "images": "Build and list the images experiments run in.",
    "jobs": "Your batch jobs: status, exit code, start, duration, GPUs, GPU-hours, peak GPU memory (sweeps grouped).",
    "keep": "Keep NAME from the idle cull for FOR (default 1h, at most the cull's keep_max).",
    "logs": "Print an experiment's or a job's output (a job's is kept after its container is gone).",
    "ls": "List experiments (of every workstation, asked in parallel; --on NAME for one).",
    "new": "Start a new experiment container (one subcommand per kind).",
    "notify": "Where you hear about your experiments: chat, e-mail and webhook routes (apprise URLs).",
    "queue": "Every person's queued GPU requests on every workstation, in the order they start, and why each "
             "waits (--on NAME for one workstation).",
    "reconcile": "Release what gone containers held, roll back dead launches, adopt or list orphans.",
    "reservations": "The GPU reservations of this workstation, per GPU, the next 48 hours.",
    "report": "Who held and who used the GPUs: GPU-hours held, busy, held while idle, reserved but unused, per "
              "person, workstation and image.",
    "reserve": "Reserve GPUS (indices like 0,2; any:N for a count; all for the whole box) for a time.",
    "revoke": "Take NAME's access to EXPERIMENT away (new logins are refused at once).",
    "rerun": "Run job NAME again: the same command, code snapshot and options, as a new job.",
    "rm": "Remove an experiment and everything it was given (the workspace stays).",
    "run": "Run COMMAND as a detached job on a snapshot of this folder: ptdesk run [OPTIONS] -- COMMAND...",
    "serve": "Hold the engine connections and answer ls for this user until Ctrl-C.",
    "ssh": "Open a shell in SSH experiment NAME, or run COMMAND there: ptdesk ssh NAME [-- COMMAND...].",
    "ssh-config": "ptdesk's own OpenSSH config: one Host per SSH experiment, so `ssh NAME` works.",
    "start": "Start a stopped experiment and wait until it is ready (on the same GPUs if still free).",
    "stop": "Stop an experiment (workspace and keys are kept; its GPUs for gpu_hold_after_stop).",
    "vscode": "VS Code Server builds cached on a workstation, so Remote-SSH starts at once and offline.",
    "watch": "Release what containers held as soon as they go away; runs until stopped (a service).",
    "workstations": "The workstations (Docker engines over SSH) this ptdesk sees; `local` is this machine.",
}


def topic_commands(topic: str) -> list[click.Command]:
    return list(importlib.import_module(f"ptdesk.commands.{topic}").COMMANDS)


def load_command(name: str) -> click.Command | None:
    topic = COMMAND_TOPICS.get(name)
    if topic is None:
        return None
    return next((c for c in topic_commands(topic) if c.name == name), None)
