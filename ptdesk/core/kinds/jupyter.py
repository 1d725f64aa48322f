"""The Jupyter kind: JupyterLab as the host user's uid, token from a file nobody else can read.

The token never goes through the environment, the command line, labels or logs: ptdesk writes it
into the created container at JUPYTER_TOKEN_FILE (owned by the container user, 0400) before start.
Jupyter Server reads that file without stripping, so it is written without a trailing newline.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ptdesk.config import Config
from ptdesk.core import experiment_files
from ptdesk.core.engine import FileSpec
from ptdesk.core.kinds.base import Kind, Plan, Recovered, parse_time
from ptdesk.core.models import Access, LaunchSpec
from ptdesk.core.state import ExperimentRecord
from ptdesk.core.waiting import next_delay
from ptdesk.errors import LaunchFailed, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.workstation import Workstation

TOKEN_FILE = "jupyter_token"
TOKEN_DIR = "/etc/ptdesk"
HOME = "/home/ptdesk"


def api_get(host: str, port: int, path: str, token: str | None, timeout: float = 3.0) -> tuple[int, object]:
    """GET a Jupyter REST path (like "/api/status") with the token header: (HTTP status, JSON body).

    Status 0 when nothing answered (or the answer was not JSON); the body is None for an error status.
    """
    request = urllib.request.Request(f"http://{_url_host(host)}:{port}{path}")
    if token:
        request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return 0, None


def api_status(host: str, port: int, token: str | None, timeout: float = 3.0) -> tuple[int, dict | None]:
    """GET /api/status; (HTTP status, body) — 0 when nothing answered."""
    status, body = api_get(host, port, "/api/status", token, timeout)
    return status, body if isinstance(body, dict) else None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class JupyterKind(Kind):
    name = "jupyter"
    title = "Jupyter"
    summary = "JupyterLab as your user, with a token only you can read."
    container_port = "8888/tcp"
    sealed_paths = (f"{TOKEN_DIR}/{TOKEN_FILE}",)

    def plan(self, config: Config, spec: LaunchSpec) -> Plan:
        token = secrets.token_urlsafe(32)
        experiment_files.write(config, spec.name, TOKEN_FILE, token, 0o600)
        return Plan(
            container_port=self.container_port,
            # Run straight as the host user: no root step, no capabilities at all.
            user=f"{config.uid}:{config.gid}",
            environment={"HOME": HOME},
            # A private home for the host uid (which may not match the image's user).
            tmpfs={HOME: f"uid={config.uid},gid={config.gid},mode=0700,size=1g"},
            files=((TOKEN_DIR, (FileSpec(TOKEN_FILE, token.encode(), mode=0o400,
                                         uid=config.uid, gid=config.gid),)),),
        )

    def token(self, config: Config, name: str) -> str | None:
        return experiment_files.read(config, name, TOKEN_FILE)

    def wait_ready(self, config: Config, record: ExperimentRecord, host: str, port: int,
                   timeout: float, is_alive: Callable[[], bool]) -> None:
        token = self.token(config, record.name)
        started = time.monotonic()
        deadline, last = started + timeout, 0
        while time.monotonic() < deadline:
            last, _ = api_status(host, port, token)
            if last == 200:
                return
            if not is_alive():
                raise LaunchFailed("The Jupyter container stopped before the server answered.",
                                   "Read its output with: ptdesk logs NAME")
            time.sleep(next_delay(time.monotonic() - started))
        raise LaunchFailed(f"JupyterLab on port {port} did not answer within {timeout:.0f} s "
                           f"(last HTTP status {last}).",
                           "Check `ptdesk logs NAME`; raise ready_timeout if the host is slow.")

    def access(self, config: Config, record: ExperimentRecord, host: str) -> Access | None:
        token = self.token(config, record.name)
        if not record.port or not token:
            return None
        url = f"http://{_url_host(host)}:{record.port}/lab?token={token}"
        return Access(connect=url, rows=(("Open", url), ("Host", f"{host}:{record.port}")),
                      fields={"url": url, "host": host, "port": record.port, "token": token})

    def idle(self, ws: Workstation, record: ExperimentRecord, container_id: str,
             now: float) -> tuple[float | None, str]:
        """Jupyter says itself when it was last used (/api/status `last_activity`, which covers
        kernels and terminals); a kernel that is busy right now counts as active."""
        token = self.token(ws.config, record.name)
        if not token or not record.port:
            return None, "no token or port recorded"
        # no_track_activity: asking must not itself count as activity.
        host, port, kernels = ws.config.connect_host, record.port, None
        code, status = api_get(host, port, "/api/status?no_track_activity=1", token, timeout=5.0)
        if code == 200:
            code, kernels = api_get(host, port, "/api/kernels?no_track_activity=1", token, timeout=5.0)
        if code != 200:
            return None, "Jupyter did not answer" if code == 0 else f"Jupyter answered HTTP {code}"
        listed = [k for k in kernels if isinstance(k, dict)] if isinstance(kernels, list) else []
        if any(k.get("execution_state") == "busy" for k in listed):
            return 0.0, "a kernel is busy"
        moments = [parse_time(status.get("last_activity") if isinstance(status, dict) else None)]
        moments += [parse_time(k.get("last_activity")) for k in listed]
        last = max((m for m in moments if m is not None), default=None)
        if last is None:
            return None, "Jupyter reported no last activity"
        return max(0.0, now - last), "Jupyter last_activity"

    def after_start(self, config: Config, record: ExperimentRecord) -> None:
        """Nothing to keep in step: the URL carries the token, and the port never changes."""

    def read_back(self, ws: Workstation, container_id: str, labels: Mapping[str, str]) -> Recovered:
        try:
            token = ws.engine.read_file(container_id, f"{TOKEN_DIR}/{TOKEN_FILE}").decode()
        except UnicodeDecodeError:
            raise PtdeskError("The Jupyter token in the container is not text.") from None
        return Recovered(files=((TOKEN_FILE, token, 0o600),) if token else ())


JUPYTER = JupyterKind()
