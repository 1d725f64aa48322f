"""A resident ptdesk (`ptdesk serve`): holds a Fleet with its engine connections (SSH handshakes
done once) and answers the CLI's read-only requests over PTDESK_HOME/run/ptdesk.sock.

Only `ls` is served, read-only, with exactly the direct path's work (reconcile, list) on engines
that are already connected; anything the server cannot do the CLI does itself. Only the same uid may
connect (0600 socket in a 0700 folder, and SO_PEERCRED checked).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import struct
import threading
from collections.abc import Callable
from typing import Any

from ptdesk.config import Config
from ptdesk.core.admin.resident_client import read_line, settings_stamp, socket_path
from ptdesk.core.base import private_files
from ptdesk.core.fleet import Fleet
from ptdesk.core.store.state import read_experiments
from ptdesk.core.workstation import Workstation
from ptdesk.errors import PtdeskError


def listing(ws: Workstation, show_all: bool) -> list[dict[str, Any]]:
    """What `ls` prints for one workstation: each experiment's JSON and its connect line."""
    return [{"json": {**e.to_json(), "workstation": ws.name}, "connect": e.connect,
             "environment": e.environment.text if e.environment else "-",
             "logged_in": "-" if e.logged_in is None else ", ".join(e.logged_in) or "nobody"}
            for e in ws.list_experiments(all=show_all)]


def answers_json(fleet: Fleet, show_all: bool, before: Callable[[Workstation], None],
                 names: list[str] | None = None) -> list[dict[str, Any]]:
    """Every workstation's listing or its error, as the CLI renders them (both paths use this)."""
    def one(ws: Workstation) -> list[dict[str, Any]]:
        before(ws)
        return listing(ws, show_all)

    answers = []
    for a in fleet.each(one, names=names):
        if a.ok or a.error is None:
            answers.append({"workstation": a.workstation, "rows": a.value, "error": None})
            continue
        answers.append({"workstation": a.workstation, "error": {"message": a.error.message, "hint": a.error.hint},
                        "rows": unreachable(fleet.workstation(a.workstation), a.error.message)})
    return answers


def unreachable(ws: Workstation, reason: str) -> list[dict[str, Any]]:
    """The experiments this home recorded on a workstation that did not answer, as the dashboard
    keeps them: status `unreachable`, with the reason (read from its store here: no engine asked)."""
    with contextlib.suppress(OSError, sqlite3.Error):
        return [{"json": {"name": r.name, "kind": r.kind, "owner": r.owner, "status": "unreachable",
                          "gpus": list(r.gpus), "workstation": ws.name, "reason": reason},
                 "connect": "-", "environment": "-", "logged_in": "-"}
                for r in read_experiments(ws.config.state_path)]
    return []


class ResidentServer:
    def __init__(self, config: Config, before: Callable[[Workstation], None],
                 env: dict[str, str] | None = None) -> None:
        """`env`: the environment `config` was resolved from (default: this process's)."""
        self.config = config
        self.fleet = Fleet(config)
        self.stamp = settings_stamp(config.home, env)
        self._before = before
        self.path = socket_path(config.home)
        self.served = 0  # answered requests (what a test or `serve` can report)

    def serve(self, stop: threading.Event) -> None:
        private_files.ensure_private_dir(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket file left by a server that died; connecting to it fails anyway
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is 0600 from its first moment
        try:
            server.bind(str(self.path))
        finally:
            os.umask(old)
        server.listen(16)
        server.settimeout(0.5)
        try:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.fleet.close()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
                if uid != os.getuid():
                    return
                answer = self.answer(json.loads(read_line(conn)))
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except (OSError, ValueError):
                return  # a client that went away or sent nonsense gets nothing

    def answer(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or request.get("stamp") != self.stamp:
            return {"ok": False, "why": "other settings"}
        if request.get("op") != "ls":
            return {"ok": False, "why": "unknown request"}
        on = request.get("on")
        try:
            names = self.fleet.check([str(on)]) if on else None
            answers = answers_json(self.fleet, bool(request.get("all")), self._before, names)
            self.served += 1
            return {"ok": True, "answers": answers}
        except PtdeskError as exc:
            return {"ok": False, "why": exc.message}
