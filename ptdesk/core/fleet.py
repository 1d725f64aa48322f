"""Every workstation at once: one Workstation per engine, asked in parallel, never blocking each other.

`each(fn)` runs fn on every selected workstation in its own daemon thread and waits at most
`deadline` seconds overall; a workstation that is down or slow gives an Answer with its error (one
sentence naming it) while the others' answers arrive as usual. The dashboard uses the same Answers
per refresh; the CLI prints the errors on stderr and the values on stdout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ptdesk.config import LOCAL, Config, load_config
from ptdesk.core.gpu.ledger import parse_request
from ptdesk.core.workstation import Workstation
from ptdesk.errors import EngineUnavailable, InvalidInput, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.base.gpu_models import GpuSnapshot

T = TypeVar("T")
DEADLINE = 12.0  # SSH connect (5 s) + a request: a dead box is reported, not waited for


@dataclass(frozen=True)
class Answer(Generic[T]):
    """One workstation's result of a fleet-wide call: a value, or the one-sentence reason there is none."""

    workstation: str
    value: T | None = None
    error: PtdeskError | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Choice:
    """Where `--on auto` launches, and why (said to the person)."""

    workstation: str
    reason: str


class Fleet:
    """The workstations of this ptdesk home: `local` first, then [workstations.NAME] in config order."""

    def __init__(self, config: Config | None = None, names: Sequence[str] | None = None) -> None:
        self.config = config or load_config()
        self.names = self.check(names) if names else [LOCAL, *self.config.workstations]
        self._open: dict[str, Workstation] = {}
        self._lock = threading.Lock()

    def check(self, names: Sequence[str]) -> list[str]:
        known = [LOCAL, *self.config.workstations]
        for name in names:
            if name not in known:
                raise InvalidInput(f"There is no workstation {name!r}.",
                                   f"Known: {', '.join(known)} (add one with: ptdesk workstations add NAME ssh://...).")
        return list(names)

    def workstation(self, name: str) -> Workstation:
        with self._lock:
            if name not in self._open:
                entry = None if name == LOCAL else self.config.workstations[name]
                self._open[name] = Workstation(self.config, entry)
            return self._open[name]

    def each(self, fn: Callable[[Workstation], T], deadline: float = DEADLINE,
             names: Sequence[str] | None = None) -> list[Answer[T]]:
        """fn on every workstation (or those in `names`), in parallel; answers in config order."""
        names = list(names or self.names)
        answers: dict[str, Answer[T]] = {}
        threads = []
        for name in names:
            ws = self.workstation(name)
            thread = threading.Thread(target=self._ask, args=(ws, fn, answers), daemon=True,
                                      name=f"fleet {name}")
            thread.start()
            threads.append(thread)
        end = time.monotonic() + deadline
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))
        return [answers.get(name) or Answer(name, error=EngineUnavailable(
                    f"Workstation {name} did not answer within {deadline:.0f} s.",
                    f"Check it with: ptdesk workstations test {name}")) for name in names]

    @staticmethod
    def _ask(ws: Workstation, fn: Callable[[Workstation], T], answers: dict[str, Answer[T]]) -> None:
        started = time.monotonic()
        try:
            answers[ws.name] = Answer(ws.name, value=fn(ws), seconds=time.monotonic() - started)
        except PtdeskError as exc:
            exc = naming(exc, ws.name)
            ws.drop_engine()  # the next call reconnects instead of reusing a broken connection
            answers[ws.name] = Answer(ws.name, error=exc, seconds=time.monotonic() - started)

    def close(self) -> None:
        with self._lock:
            open_, self._open = list(self._open.values()), {}
        for ws in open_:
            ws.close()

    # --- launch where a GPU is free -----------------------------------------------------------
    def choose(self, gpus: str, gpu_memory: str | None = None, queue: bool = False) -> Choice:
        """The workstation with the most free GPU capacity for `--gpus` (and `--gpu-memory`: GPUs with
        less free count for nothing; none: the configured default). Nothing free anywhere and `queue`:
        the workstation with that many GPUs whose GPU queue is shortest."""
        request = parse_request(gpus, gpu_memory)  # bad input is refused before any box is asked
        if request.mode == "none":
            return Choice(self.config.default_workstation, "no GPU asked for: the default workstation")
        wanted = request.wanted
        answers = self.each(lambda ws: ws.gpu_snapshot())
        offers = []
        for answer in answers:
            if answer.ok and answer.value is not None:
                offer = _offer(answer.value, self.workstation(answer.workstation), wanted, request.min_free)
                if offer is not None:
                    offers.append(offer)
        if not offers:
            # Each reason is a sentence of its own: joined inside one, without their full stops.
            trouble = "; ".join(_why_not(a).rstrip(". ") for a in answers)
            # auto launches without a GPU when none is free; so does auto-on-auto
            if queue and (shortest := self._shortest_queue(answers, wanted)):
                return shortest
            if gpus == "auto" and not request.min_free:
                return Choice(self.config.default_workstation,
                              f"no free GPU anywhere, so the default workstation, without a GPU: {trouble}")
            raise InvalidInput(f"No workstation can give {_asked(gpus)} now ({trouble}).",
                               "See them with: ptdesk gpus; or launch with --gpus none.")
        free, _, name, why = max(offers)
        return Choice(name, why)

    def _shortest_queue(self, answers: list[Answer[GpuSnapshot]], wanted: int) -> Choice | None:
        """Among the workstations that have `wanted` GPUs at all, the one whose queue is shortest
        (config order breaks a tie); None when none has that many."""
        having = [a.workstation for a in answers if a.ok and a.value is not None and a.value.available
                  and len([g for g in a.value.physical if g.error is None]) >= wanted]
        lengths = self.each(lambda ws: sum(e.status.startswith("queued") for e in ws.list_experiments(all=True)),
                            names=having) if having else []
        known = [(a.value, a.workstation) for a in lengths if a.ok and a.value is not None]
        if not known:
            return None
        waiting, name = min(known, key=lambda k: k[0])
        return Choice(name, f"no GPU free anywhere; queued where the queue is shortest: {waiting} waiting there")


def naming(exc: PtdeskError, workstation: str) -> PtdeskError:
    """The same error, its sentence naming the remote workstation it happened on ("this engine" is
    not enough once there are several)."""
    if workstation == LOCAL or exc.message.startswith("Workstation "):
        return exc
    if isinstance(exc, EngineUnavailable) and ": the Docker engine at " in exc.message:
        # The engine module names the local socket (DOCKER_HOST); this one is reached over SSH.
        what = exc.message.split(": the Docker engine at ", 1)[0]
        return EngineUnavailable(f"Workstation {workstation}: {what}: its Docker engine does not answer over SSH.",
                                 f"Check it with: ptdesk workstations test {workstation}")
    named = type(exc)(f"Workstation {workstation}: {exc.message}", exc.hint)
    named.exit_code = exc.exit_code
    return named


def _asked(gpus: str) -> str:
    """--gpus in words: `1` is GPU number 1, not one GPU."""
    if gpus == "all":
        return "all its GPUs"
    if gpus == "auto":
        return "a GPU"
    if gpus.startswith("any:"):
        count = gpus.removeprefix("any:")
        return "any GPU" if count == "1" else f"any {count} GPUs"
    return f"GPU {gpus}" if "," not in gpus else f"GPUs {gpus}"


def _why_not(answer: Answer[GpuSnapshot]) -> str:
    """Why a workstation offered no GPU, naming it once (a remote's reason already starts "box: ")."""
    if answer.error:
        return answer.error.message
    reason = answer.value.reason if answer.value and not answer.value.available else None
    if reason and reason.startswith(f"{answer.workstation}: "):
        return reason
    return f"{answer.workstation}: {reason or 'not enough free GPUs'}"


def _offer(snapshot: GpuSnapshot, ws: Workstation, wanted: int,
           min_free: int | None = None) -> tuple[float, float, str, str] | None:
    """(free GiB over the `wanted` emptiest GPUs no experiment holds, minus their load, name, a sentence),
    or None when the workstation cannot give that many."""
    if not snapshot.available:
        return None
    try:
        held = {g for e in ws.list_experiments(all=True) for g in e.gpus}
    except PtdeskError:
        held = set()  # the ledger at launch still refuses a held GPU; this only ranks workstations
    usable = [g for g in snapshot.physical if g.error is None and g.index not in held and g.memory_total
              and (not min_free or g.memory_total - (g.memory_used or 0) >= min_free)]
    usable.sort(key=lambda g: ((g.memory_used or 0) - (g.memory_total or 0), g.utilization or 0))
    if len(usable) < wanted:
        return None
    best = usable[:wanted]
    gib = sum((g.memory_total or 0) - (g.memory_used or 0) for g in best) / 1024**3
    busy = sum(g.utilization or 0 for g in best) / len(best)
    gpus = ", ".join(str(g.index) for g in best)
    return gib, -busy, ws.name, f"GPU {gpus}: {gib:.0f} GiB free, {busy:.0f}% busy"
