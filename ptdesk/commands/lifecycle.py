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
from ptdesk.core.experiments.culling import GpuWindow
from ptdesk.core.experiments.lifecycle import ContainerEvent
from ptdesk.core.experiments.reconcile import ReconcileReport
from ptdesk.core.gpu_desk import GpuDesk
from ptdesk.core.notify.herald import Said
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError

SHOWN_ACTIONS = frozenset({"create", "start", "die", "oom", "destroy"})
STOP_GRACE = 5.0  # seconds `ptdesk watch` gives its loops, all together, to finish their round when stopped
CULL_EVERY = 30.0  # seconds between idle checks (and GPU samples for the cull's window) in `ptdesk watch`
NOTIFY_EVERY = 3.0  # seconds between looks for out-of-memory kills and expiries (cgroup and store reads)
ADMIT_EVERY = 2.0  # seconds between admission rounds: a freed GPU goes to the queue's head within seconds
EXPIRY_EVERY = 5.0  # seconds between checks for expired collaborators' processes (a store query)
USAGE_EVERY = 30.0  # seconds between GPU-use samples for the usage history (written after each)


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
    minutes when [cull] (or idle_cull_seconds) is set, warning first. See contrib/systemd/.
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
    admitter = threading.Thread(target=_admit_loop, args=(ws, stop, as_json), name="ptdesk-admit", daemon=True)
    admitter.start()
    notifier = threading.Thread(target=_notify_loop, args=(ws, stop, as_json), name="ptdesk-notify", daemon=True)
    notifier.start()
    recorder = threading.Thread(target=_usage_loop, args=(ws, stop, as_json), name="ptdesk-usage", daemon=True)
    recorder.start()
    culler = None
    if ws.config.cull or ws.config.idle_cull_seconds > 0:
        culler = threading.Thread(target=_cull_loop, args=(ws, stop, as_json), name="ptdesk-cull", daemon=True)
        culler.start()
    _line(as_json, "start", f"watching instance {ws.config.instance!r}"
          + (", culling idle experiments (with a warning first)" if culler else ""), instance=ws.config.instance)
    ws.watch_events(on_event, on_engine, stop, on_reconcile=on_reconcile)
    # One deadline for all of them, not one each: a loop caught in a slow round (an admission that
    # waits for the GPU lock) must not add its wait to the others' and hold up a service's stop.
    # They are daemon threads: what is still running at the deadline ends with the process.
    deadline = time.monotonic() + STOP_GRACE
    for thread in (culler, expirer, admitter, notifier, recorder):
        if thread is not None:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    _line(as_json, "stop", "stopped")


def _admit_loop(ws: Workstation, stop: threading.Event, as_json: bool) -> None:
    """The box's admission service: the queue's head starts within seconds of its GPUs freeing,
    whoever queued it and whether or not their ptdesk is open; reservations that start warn, then
    stop, others' experiments on their GPUs. And this person's ten minutes' notice of reservations,
    and GPUs they asked to hear about (notify --when-free). Announced on the engine while it runs, so `ptdesk
    queue` can say whether anything admits."""
    own = ws.fork()
    desk = GpuDesk(own)
    warned: set[tuple[str, str]] = set()
    try:
        with contextlib.ExitStack() as marker:
            announced = False
            while not stop.wait(ADMIT_EVERY):
                try:
                    if not announced:  # once the engine answers
                        marker.enter_context(desk.announced())
                        announced = True
                    for hit in desk.enforce_reservations(warned):
                        _line(as_json, "reservation", hit.summary(), **hit.to_json())
                    for name in desk.admit():
                        _line(as_json, "admitted", f"admitted {name}: its GPUs were free", name=name)
                    for said in [*desk.heads_up(), *desk.tell_when_free()]:
                        _said(as_json, said)
                except PtdeskError as exc:
                    _line(as_json, "admit-error", f"admitting: {exc.message}", error=exc.message)
                    own.drop_engine()  # try again next round
    finally:
        own.close()


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


def _usage_loop(ws: Workstation, stop: threading.Event, as_json: bool) -> None:
    """Who used the GPUs: a sample every USAGE_EVERY seconds into the box's usage history, and last
    week's report to the routes once a week (one watcher of the box sends it)."""
    from ptdesk.core.gpu.holds import HoldReader
    from ptdesk.core.jobs import peaks
    from ptdesk.core.usage.recorder import UsageRecorder
    from ptdesk.core.usage.weekly import last_week, send_if_due
    own = ws.fork()
    recorder, reader, reported = UsageRecorder(), HoldReader(), None
    try:
        while not stop.wait(USAGE_EVERY):
            try:
                recorder.sample(own, reader, every=USAGE_EVERY)
                peaks.note(own)  # running jobs' peak GPU memory, kept in their records
                recorder.flush(own)
                week = last_week(time.time())[0]
                if week != reported:
                    _said(as_json, send_if_due(own, time.time()))
                    reported = week
            except PtdeskError as exc:
                _line(as_json, "usage-error", f"recording GPU use: {exc.message}", error=exc.message)
                own.drop_engine()  # try again next round
    finally:
        with contextlib.suppress(PtdeskError):
            recorder.flush(own)  # what the last minutes held is not lost on a clean stop
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


def _cull_loop(ws: Workstation, stop: threading.Event, as_json: bool) -> None:
    """The cull people accept: GPU samples into the window, then warn the newly idle and stop those
    past their deadline (ptdesk.core.experiments.culling)."""
    own = ws.fork()  # its own store connection and engine client, not shared with the watcher
    window = GpuWindow()
    try:
        while not stop.wait(CULL_EVERY):
            try:
                window.add(own.gpu_snapshot(attribute=False))
                for item, said in own.cull_round(window):
                    if item.action in ("warn", "stop"):
                        what = "culled  " if item.action == "stop" else "warned  "
                        _line(as_json, "cull", f"{what} {item.name}: idle {item.idle_seconds or 0:.0f} s"
                              + (f", stops at {_clock(item.deadline)}" if item.action == "warn" else ""),
                              culled=item.action == "stop", **item.to_json())
                    _said(as_json, said)
            except PtdeskError:
                own.drop_engine()  # the watcher reports engine trouble; try again next round
    finally:
        own.close()


def _clock(moment: float | None) -> str:
    return datetime.fromtimestamp(moment).strftime("%H:%M") if moment else "-"


@click.command("cull")
@click.option("--idle", "idle", help="Stop experiments idle longer than this (90s, 30m, 1.5h, 1d, 2w); "
                                     "default: idle_cull_seconds from the config.")
@click.option("--dry-run", is_flag=True, help="Only show what would be stopped.")
@json_option
@pass_workstation(reconcile=True)
def cull(ws: Workstation, idle: str | None, dry_run: bool, as_json: bool) -> None:
    """Stop idle experiments (workspaces and keys are kept; GPUs free after the hold)."""
    if idle is None and (ws.config.cull or ws.config.idle_cull_seconds > 0):
        _policy_cull(ws, dry_run, as_json)
        return
    if idle is None:
        # Nothing typed was malformed (that would be exit 2): a setting is missing.
        raise PtdeskError("No idle limit is set.", "Pass --idle 4h, or set [cull] idle = \"2h\" in config.toml.")
    limit = parse_duration(idle)
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


def _policy_cull(ws: Workstation, dry_run: bool, as_json: bool) -> None:
    """The configured cull, as the watcher runs it: warn first, stop at the deadline. A one-shot
    has one GPU sample, so --dry-run judges GPUs by now (the watcher by its whole window)."""
    window = GpuWindow()
    window.add(ws.gpu_snapshot(attribute=False))
    plans = ws.cull_plan(window, whole_window=False) if dry_run else [p for p, _ in ws.cull_round(window)]
    if as_json:
        emit_json({"dry_run": dry_run, "experiments": [p.to_json() for p in plans]})
        return
    if not plans:
        click.echo("No running experiments.")
        return
    words = {"warn": "warn now", "warned": "warned", "stop": "stop now", "kept": "kept", "-": "-"}
    rows = [(p.name, p.kind, p.owner, "?" if p.idle_seconds is None else _human(p.idle_seconds),
             ("would " if dry_run and p.action in ("warn", "stop") else "") + words[p.action],
             f"stops {_clock(p.deadline)}" if p.deadline else f"until {_clock(p.kept_until)}" if p.kept_until else "-",
             p.detail) for p in plans]
    click.echo(table(["NAME", "KIND", "OWNER", "IDLE", "ACTION", "WHEN", "HOW"], rows))


@click.command("keep")
@click.argument("name")
@click.argument("duration", metavar="[FOR]", required=False)
@json_option
@pass_workstation
def keep(ws: Workstation, name: str, duration: str | None, as_json: bool) -> None:
    """Keep NAME from the idle cull for FOR (default 1h, at most the cull's keep_max)."""
    until = ws.keep(name, parse_duration(duration) if duration else None)
    if as_json:
        emit_json({"name": name, "kept_until": until})
    else:
        click.echo(f"'{name}' is kept until {_clock(until)}: the cull will not stop it before then.")


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


COMMANDS = [watch, cull, keep, reconcile_command]
