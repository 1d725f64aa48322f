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
from collections.abc import Callable
from dataclasses import dataclass

from ptdesk.config import Config
from ptdesk.core import experiment_files
from ptdesk.core.engine import FileSpec
from ptdesk.core.kinds import Plan
from ptdesk.core.models import JupyterAccess, LaunchSpec
from ptdesk.core.state import ExperimentRecord
from ptdesk.core.waiting import next_delay
from ptdesk.errors import LaunchFailed

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


@dataclass(frozen=True)
class JupyterKind:
    name: str = "jupyter"
    container_port: str = "8888/tcp"

    def image(self, config: Config) -> str:
        return config.jupyter_image

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

    def access(self, config: Config, record: ExperimentRecord, host: str) -> JupyterAccess | None:
        token = self.token(config, record.name)
        if not record.port or not token:
            return None
        url = f"http://{_url_host(host)}:{record.port}/lab?token={token}"
        return JupyterAccess(url=url, host=host, port=record.port, token=token)


JUPYTER = JupyterKind()
