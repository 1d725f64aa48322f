"""Keeping the workstation clean: `watch` (events -> cleanup, as a service), `cull` (stop idle ones), `reconcile`."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from datetime import datetime

import click

from ptdesk.commands.common import current_workstation, emit_json, json_option, pass_workstation, table
from ptdesk.core.base.durations import parse_duration
from ptdesk.core.experiments.lifecycle import ContainerEvent
from ptdesk.core.experiments.reconcile import ReconcileReport
from ptdesk.core.notify.herald import Said
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError

SHOWN_ACTIONS = frozenset({"create", "start", "die", "oom", "destroy"})
CULL_EVERY = 300.0  # seconds between idle checks in `ptdesk watch`
NOTIFY_EVERY = 3.0  # seconds between looks for out-of-memory kills and expiries (cgroup and store reads)
EXPIRY_EVERY = 5.0  # seconds between checks for expired collaborators' processes (a store query)


def _stamp() -> str:
    return datetime.now().strftime("%H:%M:%S")


def _line(as_json: bool, type_: str, text: str, **data: object) -> None:
    if as_json:  # one JSON object per line, for journald and scripts
        click.echo(json.dumps({"time": time.time(), "type": type_, **data,
                               "workstation": current_workstation() or "local"}))
    else:
        click.echo(f"{_stamp()} {text}")


def _report_text(report: ReconcileReport) -> str:
    parts = [f"{what}: {', '.join(names)}" for what, names in (
        ("released", report.released), ("rolled back", report.rolled_back), ("adopted", report.adopted),
        ("orphans (remove with ptdesk rm)", report.orphans),
        ("not adopted, not sealed by this ptdesk home (listed read-only; remove with ptdesk rm)",
         report.unverified)) if names]
    return "; ".join(parts)


@click.command("watch")
@json_option
@pass_workstation
def watch(ws: Workstation, as_json: bool) -> None:
    """Release what containers held as soon as they go away; runs until stopped (a service).

    Follows the engine's events, survives engine restarts (catching up on reconnect), ends what
    expired collaborators still run (every few seconds), and stops idle experiments every few
    minutes when idle_cull_seconds is set. See contrib/systemd/.
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def on_event(event: ContainerEvent) -> None:
        if event.action not in SHOWN_ACTIONS:
            return  # exec and archive events of ptdesk's own work are noise here
        # Only what this store released: another user's container going away frees nothing here.
        released = event.done == "released"
        _line(as_json, "event", f"{event.action:<8} {event.name} ({event.container_id[:12]})"
              + (": released its port, GPUs and secrets" if released else ""),
              action=event.action, name=event.name, container=event.container_id, kind=event.kind,
              released=released)

    herald = ws.herald()  # engine lost/back: decided in the home, as the engine cannot hold it

    def on_engine(up: bool, reason: str | None) -> None:
        _line(as_json, "engine", "engine reachable" if up else f"engine unreachable: {reason} (retrying)",
              up=up, reason=reason)
        _said(as_json, herald.engine_changed(up, reason))

    def on_reconcile(report: object) -> None:
        if isinstance(report, ReconcileReport) and (report.changed or report.orphans):
            _line(as_json, "reconcile", f"reconciled: {_report_text(report)}", **report.to_json())

    expirer = threading.Thread(target=_expiry_loop, args=(ws, stop, as_json), name="ptdesk-expiry", daemon=True)
    expirer.start()
    notifier = threading.Thread(target=_notify_loop, args=(ws, stop, as_json), name="ptdesk-notify", daemon=True)
    notifier.start()
    limit = float(ws.config.idle_cull_seconds)
    culler = None
    if limit > 0:
        culler = threading.Thread(target=_cull_loop, args=(ws, limit, stop, as_json),
                                  name="ptdesk-cull", daemon=True)
        culler.start()
    _line(as_json, "start", f"watching instance {ws.config.instance!r}"
          + (f", culling after {limit:.0f} s idle" if limit > 0 else ""), instance=ws.config.instance)
    ws.watch_events(on_event, on_engine, stop, on_reconcile=on_reconcile)
    if culler:
        culler.join(timeout=5)
    expirer.join(timeout=5)
    notifier.join(timeout=5)
    _line(as_json, "stop", "stopped")


def _said(as_json: bool, said: Said | None) -> None:
    """A notice this watcher said (another watcher of the box says nothing), and a route that just
    started failing (said once: later failures of it stay quiet until it works again)."""
    if said is None:
        return
    _line(as_json, "notify", f"notified {said.notice.title}", **said.notice.to_json(),
          routes=[d.to_json() for d in said.deliveries])
    for route in said.failed_routes():
        _line(as_json, "route-failed", f"route '{route}' failed; said once (ptdesk notify test checks it)",
              route=route)


def _notify_loop(ws: Workstation, stop: threading.Event, as_json: bool) -> None:
    """Out-of-memory kills and expiries, every few seconds (cgroup and store reads only)."""
    own = ws.fork()
    herald = own.herald()
    try:
        with contextlib.suppress(PtdeskError):
            herald.tidy()
        while not stop.wait(NOTIFY_EVERY):
            try:
                for said in herald.round():
                    _said(as_json, said)
            except PtdeskError:
                own.drop_engine()  # the watcher reports engine trouble; try again next round
    finally:
        own.close()


def _expiry_loop(ws: Workstation, stop: threading.Event, as_json: bool) -> None:
    """sshd refuses an expired key; what its holder still runs is ended here, within seconds, and
    so is what any collaborator uid without a grant runs."""
    own = ws.fork()  # its own store connection and engine client, like the cull loop's
    try:
        while not stop.wait(EXPIRY_EVERY):
            try:
                for ended in own.end_expired():
                    if ended.pids or ended.error:  # an expired person's, or a uid's without a grant
                        label = "expired" if ended.why == "expired" else "ended"
                        _line(as_json, label, f"{label:<8} {ended.summary()}", **ended.to_json())
            except PtdeskError:
                own.drop_engine()  # the watcher reports engine trouble; try again next round
    finally:
        own.close()


def _cull_loop(ws: Workstation, limit: float, stop: threading.Event, as_json: bool) -> None:
    # A Workstation of its own: the store connection and engine client are not shared with the watcher.
    own = ws.fork()
    try:
        while not stop.wait(min(CULL_EVERY, max(limit / 4, 5.0))):
            try:
                for state in own.cull(limit):
                    if state.culled:
                        _line(as_json, "cull", f"culled   {state.name}: idle {state.idle_seconds:.0f} s",
                              **state.to_json())
            except PtdeskError:
                own.drop_engine()  # the watcher reports engine trouble; try again next round
    finally:
        own.close()


@click.command("cull")
@click.option("--idle", "idle", help="Stop experiments idle longer than this (90s, 30m, 1.5h, 1d, 2w); "
                                     "default: idle_cull_seconds from the config.")
@click.option("--dry-run", is_flag=True, help="Only show what would be stopped.")
@json_option
@pass_workstation(reconcile=True)
def cull(ws: Workstation, idle: str | None, dry_run: bool, as_json: bool) -> None:
    """Stop idle Jupyter and SSH experiments (workspaces and keys are kept; GPUs free after the hold)."""
    if idle is not None:
        limit = parse_duration(idle)
    elif ws.config.idle_cull_seconds > 0:
        limit = float(ws.config.idle_cull_seconds)
    else:
        # Nothing typed was malformed (that would be exit 2): a setting is missing.
        raise PtdeskError("No idle limit is set.", "Pass --idle 4h, or set idle_cull_seconds in config.toml.")
    states = ws.cull(limit, dry_run=dry_run)
    if as_json:
        emit_json({"limit_seconds": limit, "dry_run": dry_run, "experiments": [s.to_json() for s in states]})
        return
    if not states:
        click.echo("No running experiments.")
        return
    verb = "would stop" if dry_run else "stopped"
    rows = [(s.name, s.kind, s.owner, "?" if s.idle_seconds is None else _human(s.idle_seconds),
             verb if s.culled or (dry_run and s.idle_seconds is not None and s.idle_seconds >= limit) else "-",
             s.detail) for s in states]
    click.echo(table(["NAME", "KIND", "OWNER", "IDLE", "ACTION", "HOW"], rows))


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@click.command("reconcile")
@json_option
@pass_workstation
def reconcile_command(ws: Workstation, as_json: bool) -> None:
    """Release what gone containers held, roll back dead launches, adopt or list orphans."""
    report = ws.reconcile()
    if as_json:
        emit_json(report.to_json())
        return
    click.echo(_report_text(report) or "Nothing to do: the store and the engine agree.")


COMMANDS = [watch, cull, reconcile_command]
