"""The GPU panel: one row per GPU and per MIG instance, or one calm line saying why there are none.

With several workstations the rows are grouped by workstation, each group under a title line
(name, driver, GPU count, or why its engine does not answer); each group is drawn from its own
workstation's samples, so a box that stops answering changes only its own group.

A GPU that has held memory at 0 % utilisation for long (ptdesk.core.experiments.cull.idle_gpus) says so at the
start of its users: "idle 35m", so whoever is sitting on it can be asked to let go. A GPU an
experiment holds says so whether or not a process of it shows ("train (ann) busy"; a stopped one
within its hold, "g1 (ann) stopped, held to 14:03"), and use outside every ptdesk experiment beyond
the threshold is named by host user and pid ("unclaimed 30.0 GiB by pid 4242 (bob)").
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from ptdesk.config import LOCAL
from ptdesk.core.base.gpu_models import GpuProcess, GpuSample
from ptdesk.tui import format as fmt

if TYPE_CHECKING:  # names only: the panel is drawn before the first sample (and its claims) exist
    from ptdesk.core.sharing.claims import GpuClaim
    from ptdesk.tui.feeds import GpuView

SPARK_POINTS = 60  # the last minute at 1 Hz


def users(processes: tuple[GpuProcess, ...]) -> str:
    """Who is on this GPU: experiments (and their owners) first, then host users, in a stable order."""
    seen: dict[str, None] = {}
    for p in processes:
        if p.experiment:
            seen[f"{p.experiment} ({p.person or p.owner or '?'})"] = None
        elif p.container:
            seen[f"container {p.container[:12]}"] = None
        elif p.owner:
            seen[f"{p.owner} (host pid {p.pid})"] = None
        else:
            seen[f"pid {p.pid}"] = None
    return ", ".join(seen) or "idle"


def gpu_name(gpu: GpuSample) -> Text:
    """The row's first cell: index (or MIG label) and model; on a narrow terminal only the index shows."""
    label = f" {gpu.label}" if gpu.is_mig else gpu.label
    return Text.assemble((f"{label:>4} ", "bold"), (f"{gpu.name.replace('NVIDIA ', '')[:18]:<18} ", ""))


def gpu_figures(gpu: GpuSample) -> Text:
    """The fixed-width load of a row: utilisation and memory bars (what every width shows)."""
    if gpu.error:
        return Text(f"cannot be read ({gpu.error})", style="bold red")
    util = gpu.utilization / 100 if gpu.utilization is not None else None
    used = fmt.size_pair(gpu.memory_used, gpu.memory_total)
    return Text.assemble("util ", fmt.bar(util, 8), f" {fmt.percent(gpu.utilization):>4}  ",
                         "mem ", fmt.bar(gpu.memory_fraction, 8), f" {used:<15} ")


def gpu_heat(gpu: GpuSample) -> Text:
    """Temperature and power, which a narrow terminal leaves out for the holder's name."""
    if gpu.error:
        return Text("")
    temp = f"{gpu.temperature}°C" if gpu.temperature is not None else fmt.NA
    power = (f"{gpu.power:.0f}/{gpu.power_limit:.0f} W" if gpu.power is not None and gpu.power_limit
             else f"{gpu.power:.0f} W" if gpu.power is not None else fmt.NA)
    return Text(f"{temp:>5} {power:>10}")


class GpuRow(Horizontal):
    """One GPU: its figures, a sparkline of recent utilisation, and who is using it."""

    def __init__(self, gpu: GpuSample, history: tuple[float | None, ...], idle: str | None = None,
                 claim: GpuClaim | None = None) -> None:
        super().__init__(classes="gpu-row")
        self.uuid = gpu.uuid
        self._initial = (gpu, history, idle, claim)

    def compose(self) -> ComposeResult:
        gpu, history, idle, claim = self._initial
        yield Static(gpu_name(gpu), classes="gpu-name")
        yield Static(gpu_figures(gpu), classes="gpu-figures")
        yield Static(gpu_heat(gpu), classes="gpu-heat")
        yield Sparkline(_points(history), classes="gpu-spark")
        yield Static(_users_text(gpu, idle, claim), classes="gpu-users")

    def show(self, gpu: GpuSample, history: tuple[float | None, ...], idle: str | None = None,
             claim: GpuClaim | None = None) -> None:
        if not self.children:  # mounted but not composed yet: compose shows the newest
            self._initial = (gpu, history, idle, claim)
            return
        self.query_one(".gpu-name", Static).update(gpu_name(gpu))
        self.query_one(".gpu-figures", Static).update(gpu_figures(gpu))
        self.query_one(".gpu-heat", Static).update(gpu_heat(gpu))
        # Sparkline only redraws when `data` is assigned a new list.
        self.query_one(".gpu-spark", Sparkline).data = _points(history)
        self.query_one(".gpu-users", Static).update(_users_text(gpu, idle, claim))


def _points(history: tuple[float | None, ...]) -> list[float]:
    """The recent utilisation; empty (a flat line) until there are two real values to compare,
    and for a metric the GPU does not report (MIG, lost): a full bar there would be a lie."""
    recent = history[-SPARK_POINTS:]
    if sum(v is not None for v in recent) < 2:
        return []
    return [v if v is not None else 0.0 for v in recent]


def idle_flags(view: GpuView) -> dict[str, str]:
    """uuid -> "idle 35m" for the GPUs the view flags (keyed by label there); minutes, so an idle
    panel is redrawn once a minute, not every second."""
    return {g.uuid: f"idle {fmt.duration(view.idle[g.label])}" for g in view.snapshot.gpus if g.label in view.idle}


def _users_text(gpu: GpuSample, idle: str | None = None, claim: GpuClaim | None = None) -> Text:
    text = Text(users(gpu.processes), overflow="ellipsis", no_wrap=True, style="dim" if not gpu.processes else "")
    # Held, or used outside ptdesk beyond the threshold: say so instead of listing processes.
    if claim is not None and (claim.holder or claim.blocks):
        parts = []
        if claim.holder:
            parts.append(Text(held_short(claim), style="bold"))
        if claim.unclaimed:  # named by host user and pid; red when it keeps the GPU from being given
            parts.append(Text(f"unclaimed {claim.unclaimed_text()}", style="bold red" if claim.blocks else "yellow"))
        text = Text(" · ", overflow="ellipsis", no_wrap=True).join(parts)
    if idle:
        text = Text.assemble((idle, "bold yellow"), " · ", text, overflow="ellipsis", no_wrap=True)
    return text


def held_short(claim: GpuClaim) -> str:
    """The holder as the narrow users cell says it: "train (ann) busy", "g1 (ann) stopped, held to 14:03"."""
    holder = claim.holder
    assert holder is not None
    who = f"{holder.experiment} ({holder.owner})" if holder.owner else holder.experiment
    if holder.state == "stopped" and holder.until is not None:
        return f"{who} stopped, held to {time.strftime('%H:%M', time.localtime(holder.until))}"
    return f"{who} {'busy' if claim.busy else 'idle'}" if claim.busy is not None else who


class GpuGroup(Vertical):
    """One workstation's GPUs: its title (only with several workstations), the reason line, rows
    keyed by GPU uuid, added and removed as GPUs come and go; never rebuilt each tick."""

    _last: tuple | None = None

    def __init__(self, workstation: str, titled: bool) -> None:
        super().__init__(classes="gpu-group")
        self.workstation = workstation
        self.titled = titled
        self.driver: str | None = None
        self.gpu_count: int | None = None
        self.trouble: str | None = None  # why its engine does not answer

    def compose(self) -> ComposeResult:
        yield Static(Text(self.workstation, style="bold"), classes="gpu-title")
        yield Static("Reading the GPUs…", classes="gpu-reason")

    def on_mount(self) -> None:
        self.query_one(".gpu-title").display = self.titled

    def set_trouble(self, reason: str | None) -> None:
        if reason != self.trouble:
            self.trouble = reason
            self._title()

    def _title(self) -> None:
        if not self.titled:
            return
        parts = [Text(self.workstation, style="bold")]
        if self.driver:
            parts.append(Text(f"driver {self.driver}"))
        if self.gpu_count is not None:
            parts.append(Text(fmt.count(self.gpu_count, "GPU")))
        if self.trouble:
            parts.append(Text(f"engine unreachable: {self.trouble}", style="bold red"))
        self.query_one(".gpu-title", Static).update(Text(" · ").join(parts))

    def _unnamed(self, reason: str | None) -> str | None:
        """A remote's reason names its workstation ("box: ..."); under its own title it need not
        say it again."""
        return reason.removeprefix(f"{self.workstation}: ") if reason and self.titled else reason

    def show(self, view: GpuView) -> None:
        snapshot = view.snapshot
        flags = idle_flags(view)
        # An unchanged picture (no GPU, or idle GPUs) is not redrawn: the dashboard idles cheaply.
        picture = (snapshot.available, snapshot.reason, snapshot.driver, snapshot.gpus,
                   tuple(view.history.get(g.uuid, ())[-SPARK_POINTS:] for g in snapshot.gpus), flags,
                   tuple(sorted(view.claims.items())))
        if picture == self._last:
            return
        self._last = picture
        reason = self.query_one(".gpu-reason", Static)
        if not snapshot.available:
            reason.update(Text(f"No GPU information: {self._unnamed(snapshot.reason) or 'NVML is not available.'} "
                               "Everything else works.", style="italic"))
            reason.display = True
        elif not snapshot.gpus:
            reason.update(Text("NVML answers but reports no GPUs.", style="italic"))
            reason.display = True
        else:
            reason.display = False
        self.driver = snapshot.driver
        self.gpu_count = len(snapshot.physical) if snapshot.available else None
        self._title()
        self._rows(view, flags)

    def _rows(self, view: GpuView, flags: dict[str, str]) -> None:
        snapshot = view.snapshot
        rows = {row.uuid: row for row in self.query(GpuRow)}
        wanted = [g.uuid for g in snapshot.gpus]
        for uuid, row in rows.items():
            if uuid not in wanted:
                row.remove()
        # Order matters (MIG rows right after their GPU): when the set changes, remount in order.
        if [u for u in rows if u in wanted] != wanted:
            for row in rows.values():
                if row.uuid in wanted:
                    row.remove()
            self.mount_all([GpuRow(g, view.history.get(g.uuid, ()), flags.get(g.uuid), _claim(view, g))
                            for g in snapshot.gpus])
            return
        for gpu in snapshot.gpus:
            rows[gpu.uuid].show(gpu, view.history.get(gpu.uuid, ()), flags.get(gpu.uuid), _claim(view, gpu))


def _claim(view: GpuView, gpu: GpuSample) -> GpuClaim | None:
    """A physical GPU's claims (MIG instance rows show their own processes only)."""
    return None if gpu.is_mig else view.claims.get(gpu.index)


class GpuPanel(Vertical):
    """A group per workstation, in the order given; one workstation's group has no title (the
    panel's border says its driver)."""

    def __init__(self, workstations: tuple[str, ...] = (LOCAL,), *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.workstations = workstations

    def compose(self) -> ComposeResult:
        for name in self.workstations:
            yield GpuGroup(name, titled=len(self.workstations) > 1)

    def group(self, workstation: str) -> GpuGroup | None:
        return next((g for g in self.query(GpuGroup) if g.workstation == workstation), None)

    def show(self, view: GpuView, workstation: str = LOCAL) -> None:
        group = self.group(workstation)
        if group is None:
            return
        group.show(view)
        if len(self.workstations) == 1:
            self.border_subtitle = f"driver {view.snapshot.driver}" if view.snapshot.driver else ""

    def set_trouble(self, workstation: str, reason: str | None) -> None:
        """Say on `workstation`'s group that its engine does not answer (None: it does again)."""
        if (group := self.group(workstation)) is not None:
            group.set_trouble(reason)
