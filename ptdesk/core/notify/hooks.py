"""The events other parts raise, one function each: the GPU queue and reservations call these
(each is said once per box, to the routes that want it, and shown in the dashboard).
ptdesk.core.sharing.heads_up calls the reservation ones ten minutes ahead."""

from __future__ import annotations

from datetime import datetime

from ptdesk.core.notify.deliver import Notice
from ptdesk.core.notify.herald import Said, announce
from ptdesk.core.site import Site


def queued_started(site: Site, name: str, connect: str, container_id: str) -> Said | None:
    """A queued experiment got its GPUs and started; `connect`: its URL or ssh line."""
    return announce(site, f"started:{container_id}", Notice(
        "started", f"ptdesk: '{name}' started", f"Your queued experiment '{name}' started. Connect: {connect}"))


def reservation_ending(site: Site, gpus: tuple[int, ...], ends: float) -> Said | None:
    """A reservation of this person's ends soon: what runs on its GPUs may be queued-over after."""
    ids = ", ".join(map(str, gpus))
    at = datetime.fromtimestamp(ends).strftime("%H:%M")
    return announce(site, f"reservation-end:{ids}:{ends}", Notice(
        "reservation", f"ptdesk: your reservation of GPU {ids} ends at {at}",
        f"Your reservation of GPU {ids} on '{site.name}' ends at {at}: save your work. To keep working, "
        f"reserve again (ptdesk reserve {ids.replace(' ', '')} --from {at} --to ...) if nobody else has."))


def reservation_clash(site: Site, name: str, container_id: str, gpus: tuple[int, ...], by: str,
                      stops: float | None, stops_text: str | None, moment: float) -> Said | None:
    """One of this person's experiments runs on GPUs someone else reserved from soon: its owner
    hears it here (dashboard, routes), everyone working in it in their terminals and on their own
    routes. `stops`: when it will be stopped (None: warned only); `stops_text`: that time as the
    workstation's clock shows it, with its zone."""
    from ptdesk.core.notify.people import warn_everyone  # it says through herald, as this does

    ids = ", ".join(map(str, gpus))
    then = "it will not be stopped, but " if stops is None else \
        f"it will be stopped at {stops_text} (its disk is kept), so "
    notice = Notice("reservation", f"ptdesk: '{name}' runs on GPU {ids}, reserved by {by}",
                    f"'{name}' runs on GPU {ids} on '{site.name}', which {by} has reserved: {then}save your "
                    f"work and give the GPU back. Start it again later, or on other GPUs: "
                    f"ptdesk start {name} --gpus auto")
    said = announce(site, f"clash:{container_id}:{by}:{stops}", notice)
    return warn_everyone(site, name, notice, moment, said) if said is not None else None


def gpu_freed(site: Site, gpus: tuple[int, ...], waited_since: float) -> Said | None:
    """GPUs this person waits for (queued, or asked with --when-free) are free now."""
    ids = ", ".join(map(str, gpus))
    return announce(site, f"gpu-free:{ids}:{waited_since}", Notice(
        "gpu-free", f"ptdesk: GPU {ids} on '{site.name}' is free",
        f"GPU {ids} on '{site.name}' is free now. Take it: ptdesk new ... --gpus {ids.replace(' ', '')}"))


def reservation_starting(site: Site, gpus: tuple[int, ...], starts: float, ends: float) -> Said | None:
    """A reservation of this person's starts soon (the reservations call this some minutes ahead)."""
    ids = ", ".join(map(str, gpus))
    at = datetime.fromtimestamp(starts).strftime("%H:%M")
    until = datetime.fromtimestamp(ends).strftime("%H:%M")
    return announce(site, f"reservation:{ids}:{starts}", Notice(
        "reservation", f"ptdesk: your reservation of GPU {ids} starts at {at}",
        f"Your reservation of GPU {ids} on '{site.name}' runs {at}-{until}."))


def job_key(site: Site, name: str) -> str:
    """What a job's end is said once as (its marker goes when `ptdesk jobs --prune` forgets the job)."""
    return f"job:{site.name}:{name}"


def job_finished(site: Site, name: str, status: str, exit_code: int | None, duration: float | None,
                 gpu_hours: float, last_lines: tuple[str, ...] = ()) -> Said | None:
    """A batch job of this person's ended (succeeded, failed, timed out, cancelled): how, and how it ended."""
    took = "" if duration is None else f" after {int(duration) // 60}m{int(duration) % 60:02d}s"
    code = "" if exit_code is None else f" (exit code {exit_code})"
    tail = "\n".join(last_lines[-5:])
    return announce(site, job_key(site, name), Notice(
        "job", f"ptdesk: job '{name}' {status}{code}",
        f"Job '{name}' on '{site.name}' {status}{code}{took}, {gpu_hours:.2f} GPU-hours."
        + (f" Last lines:\n{tail}" if tail else "") + f"\nLog: ptdesk logs {name}"))


def reservation_displaces(site: Site, name: str, gpus: tuple[int, ...], reservation: str, deadline: str | None,
                          stopped: bool, key: str) -> Said | None:
    """Someone else's reservation started on GPUs this person's experiment `name` uses: it is
    stopped at `deadline` (None: warn only), or `stopped` already. `reservation`: "ann 14:00–18:00
    UTC"; `deadline`: a clock time with its zone; `key`: the reservation and container, said once each."""
    ids = ",".join(map(str, gpus))
    if stopped:
        return announce(site, f"displaced-stopped:{key}", Notice(
            "reservation", f"ptdesk: '{name}' was stopped for a reservation",
            f"Your experiment '{name}' on '{site.name}' was stopped: GPU {ids} is reserved by {reservation}. "
            f"Nothing in it is lost. Start it after the reservation, or now on other GPUs: "
            f"ptdesk start {name} --gpus any:{len(gpus)} (or --queue)."))
    then = f"it will be stopped at {deadline}" if deadline else "it will not be stopped, but give the GPU back"
    return announce(site, f"displaced:{key}", Notice(
        "reservation", f"ptdesk: GPU {ids} reserved by someone else has started: save '{name}'",
        f"GPU {ids} on '{site.name}', which your experiment '{name}' uses, is reserved by {reservation} "
        f"and the reservation has started: save your work ({then})."))
