"""Docker events -> cleanup: one consumer of the engine's event stream for this instance.

Whatever removes a container (`ptdesk rm`, `docker rm -f`, a crashed engine), what it was given must
be released: host-side secrets, the record (and with it the port and GPU reservation), grants. The
watcher turns each event into that cleanup; `reconcile` covers what no event will ever say (the
engine was down, or nothing was watching). The last event time seen is persisted, so a watcher that
reconnects, or restarts, resumes with `since=` and loses nothing the engine still remembers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ptdesk.core.base.models import LABEL_KIND, LABEL_NAME, LABEL_OWNER
from ptdesk.core.base.text import printable
from ptdesk.core.collaborators.rotation import finish_pending
from ptdesk.core.engine.locks import GpuLockBusy
from ptdesk.core.experiments import operations
from ptdesk.core.experiments.reconcile import ADMIT_LOCK_WAIT, reconcile
from ptdesk.core.jobs import ending
from ptdesk.core.sharing import admission
from ptdesk.core.sharing.gpu_queue import QUEUED
from ptdesk.errors import EngineUnavailable, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import OwnSite

log = logging.getLogger(__name__)

SINCE_KEY = "lifecycle.events_since"  # "seconds.nanoseconds" of the last event handled
# `kill` and `oom` are followed by `die`; they are passed on to on_event but change nothing.
STATUS_FOR = {"die": "exited", "stop": "exited", "start": "running"}
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
STABLE_STREAM = 30.0  # seconds a stream must have lasted for the backoff to start over


@dataclass(frozen=True)
class ContainerEvent:
    action: str  # create, start, die, stop, destroy, ...
    name: str  # the experiment name (ptdesk.name label)
    container_id: str
    time: float
    kind: str | None
    owner: str | None
    done: str | None = None  # what apply_event did ("released", a status), set before on_event sees it

    @classmethod
    def from_docker(cls, raw: dict) -> ContainerEvent | None:
        """The event of a ptdesk container, or None for anything else (decoded docker-py dict)."""
        actor = raw.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        name = attrs.get(LABEL_NAME)
        action = str(raw.get("Action") or raw.get("status") or "")
        if not name or not action:
            return None
        nanos = raw.get("timeNano")
        when = nanos / 1e9 if nanos else float(raw.get("time") or 0)
        # "exec_start: sh -c ..." style actions carry their command: keep the verb only.
        # Labels of any engine user's container: made printable here, before anyone prints them. A
        # name changed so cannot match a record (records hold valid names only).
        kind, owner = attrs.get(LABEL_KIND), attrs.get(LABEL_OWNER)
        return cls(action=printable(action.split(":", 1)[0]), name=printable(name),
                   container_id=str(actor.get("ID") or raw.get("id")), time=when,
                   kind=printable(kind) if kind else None, owner=printable(owner) if owner else None)


def apply_event(site: OwnSite, event: ContainerEvent) -> str | None:
    """Bring the store in line with one event; returns what was done (for the watch log), or None."""
    record = site.store.experiment(event.name)
    if record is None or record.status == "launching":
        # A launch in flight owns its record until it reports ready or rolls back (reconcile
        # takes over if its launcher dies); a container without a record is reconcile's to adopt,
        # or another user's, whose events change nothing here.
        return None
    if record.container_id and record.container_id != event.container_id:
        return None  # an older container of the same name (removed, then re-launched)
    if event.action == "destroy":
        # A queued request admitted (by anyone's ptdesk): its entry goes, its admitted container stays.
        if record.status == QUEUED and admission.follow(site, record, site.engine.list_managed(site.config.instance)):
            return "admitted"
        if operations.release(site, event.name, if_container=event.container_id):
            site.store.audit("released", event.name, {"container": event.container_id[:12], "by": "event"},
                             who="ptdesk-watch")
            return "released"
        return None
    status = STATUS_FOR.get(event.action)
    if status and record.status != status:
        site.store.update_experiment(event.name, status=status)
    if event.action == "start":
        _finish_pending_grants(site, event.name)
    if event.action == "die" and record.kind == ending.JOB:
        ending.finish(site, record)  # kept and removed at once: its destroy then releases it
    return status


def _finish_pending_grants(site: OwnSite, name: str) -> None:
    """Key rotations that waited for the container to run again are finished (rotation module),
    in a thread of their own with its own Site: the proof waits for sshd on the readiness
    schedule, and meanwhile the watcher must go on releasing what vanished containers held."""
    if not any(g.pending for g in site.store.grants(experiment=name)):
        return
    threading.Thread(target=_finish_in_background, args=(site.fork(), name), name=f"ptdesk-finish-{name}",
                     daemon=True).start()


def _finish_in_background(site: OwnSite, name: str) -> None:
    try:
        finish_pending(site, name)
    except PtdeskError as exc:
        log.warning("pending grants of %s not installed yet: %s", name, exc.message)
    except Exception:  # a bug here must not go unseen, nor take the watcher with it
        log.exception("finishing pending grants of %s failed", name)
    finally:
        site.close()


def _since_text(nanos: int) -> str:
    return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"


def _nanos(text: str | None) -> int:
    if not text:
        return 0
    seconds, _, fraction = text.partition(".")
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])


class EventWatcher:
    """Follows the engine's events for this instance until `stop` is set; survives engine restarts."""

    def __init__(self, site: OwnSite, on_event: Callable[[ContainerEvent], None] = lambda event: None,
                 on_engine: Callable[[bool, str | None], None] = lambda up, reason: None,
                 on_reconcile: Callable[[object], None] = lambda report: None) -> None:
        self.site = site
        self.on_event = on_event
        self.on_engine = on_engine
        self.on_reconcile = on_reconcile
        self._last_nanos = _nanos(site.store.get_meta(SINCE_KEY))
        self._seen_at_last: set[tuple[str, str]] = set()  # events sharing the last timestamp
        self._up: bool | None = None  # unknown until the first connection attempt
        self._admitting = threading.Event()  # an admission round started by an event is running

    def run(self, stop: threading.Event) -> None:
        """Block until `stop` is set (returns within about a second of it)."""
        backoff = BACKOFF_FIRST
        while not stop.is_set():
            try:
                engine = self.site.engine
                self._engine_up()
                if not self._last_nanos:
                    # First run ever: follow from before the reconcile pass, so nothing falls between.
                    self._last_nanos = time.time_ns() - 1_000_000_000
                # What happened while nobody was watching (or the engine was down) has no event.
                report = reconcile(self.site)
                try:
                    self.on_reconcile(report)
                except Exception:  # a listener's bug must not stop the watcher
                    log.exception("on_reconcile failed")
                followed = time.monotonic()
                self._follow(engine, stop)
                if stop.is_set():
                    break
                if time.monotonic() - followed > STABLE_STREAM:
                    backoff = BACKOFF_FIRST  # it worked for a good while: this is a fresh problem
                engine.version()  # the stream ended: was that the engine going away?
                # It is up, but ended our stream: do not hammer it if that keeps happening.
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except EngineUnavailable as exc:
                self.site.drop_engine()
                if self._up:
                    backoff = BACKOFF_FIRST  # it just went away: first retries come quickly
                self._engine_down(exc.message)
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except PtdeskError as exc:  # the engine refused something: keep watching, try again
                log.warning("watching events: %s", exc.message)
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception:  # a busy or damaged store, a bug: everyone's cleanup depends on going on
                log.exception("watching events failed; trying again")
                stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _admit_soon(self) -> None:
        """A container went away, anyone's: its GPUs may be what the queue's head waits for. One
        admission round in a thread of its own (the events go on meanwhile), never two at once."""
        if self._admitting.is_set():
            return
        self._admitting.set()

        def round_() -> None:
            own = self.site.fork()
            try:
                admission.admit(own, wait=ADMIT_LOCK_WAIT)
            except GpuLockBusy:
                pass  # another round holds it (this watcher's own loop, anyone's ptdesk): it admits meanwhile
            except Exception:  # noqa: BLE001 - the next destroy, reconcile or the box's service retries
                log.warning("admitting after a container went away failed", exc_info=True)
            finally:
                own.close()
                self._admitting.clear()

        threading.Thread(target=round_, name="ptdesk-admit-on-event", daemon=True).start()

    def _engine_up(self) -> None:
        if self._up is not True:
            self._up = True
            self.on_engine(True, None)

    def _engine_down(self, reason: str) -> None:
        if self._up is not False:
            self._up = False
            self.on_engine(False, reason)

    def _follow(self, engine, stop: threading.Event) -> None:
        since = _since_text(self._last_nanos) if self._last_nanos else None
        stream = engine.events(self.site.config.instance, since=since)
        done = threading.Event()

        def close_on_stop() -> None:
            # The stream blocks in recv(); shutting its socket down from here is what ends it.
            while not done.is_set():
                if stop.wait(0.2):
                    with contextlib.suppress(Exception):
                        stream.close()
                    return

        closer = threading.Thread(target=close_on_stop, name="ptdesk-events-closer", daemon=True)
        closer.start()
        try:
            for raw in stream:
                if stop.is_set():
                    break
                self._handle(raw)
        except Exception as exc:  # a socket shut down under us, or the engine died mid-read
            if not stop.is_set():
                log.debug("event stream ended: %s", exc)
        finally:
            done.set()
            with contextlib.suppress(Exception):
                stream.close()
            closer.join(timeout=1.0)

    def _handle(self, raw: dict) -> None:
        nanos = int(raw.get("timeNano") or int(raw.get("time") or 0) * 1_000_000_000)
        key = (str((raw.get("Actor") or {}).get("ID")), str(raw.get("Action")))
        if nanos < self._last_nanos or (nanos == self._last_nanos and key in self._seen_at_last):
            return  # replayed by since= after a reconnect
        event = ContainerEvent.from_docker(raw)
        if event is not None:
            try:
                event = replace(event, done=apply_event(self.site, event))
            except EngineUnavailable:
                raise
            except PtdeskError as exc:
                log.warning("event %s of %s not applied: %s", event.action, event.name, exc.message)
            except Exception:  # one bad event (a damaged record, a bug) must not stop the others' cleanup
                log.exception("event %s of %s not applied", event.action, event.name)
            try:
                self.on_event(event)
            except Exception:  # a listener's bug must not stop the cleanup of everyone's containers
                log.exception("on_event failed for %s of %s", event.action, event.name)
            if event.action == "destroy":
                self._admit_soon()
        if nanos != self._last_nanos:
            self._last_nanos, self._seen_at_last = nanos, set()
        self._seen_at_last.add(key)
        self.site.store.set_meta(SINCE_KEY, _since_text(nanos))
