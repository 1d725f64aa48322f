"""The Jupyter kind: JupyterLab as the host user's uid, token from a file nobody else can read.

The token never goes through the environment, the command line, labels or logs: ptdesk writes it
into the created container at JUPYTER_TOKEN_FILE (owned by the container user, 0400) before start.
Jupyter Server reads that file without stripping, so it is written without a trailing newline.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ptdesk.config import Config
from ptdesk.core.base.models import Access, LaunchSpec
from ptdesk.core.base.times import parse_time
from ptdesk.core.engine.client import Engine
from ptdesk.core.engine.files import FileSpec
from ptdesk.core.kinds import jupyter_tls, served
from ptdesk.core.kinds.base import Kind, Plan, Recovered
from ptdesk.core.store import experiment_files
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.errors import NotFound, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

TOKEN_FILE = "jupyter_token"
TOKEN_DIR = "/etc/ptdesk"
COMMAND = ("jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.root_dir=/workspace",
           "--ServerApp.password=", "--ServerApp.open_browser=False",
           f"--config={TOKEN_DIR}/{jupyter_tls.CONFIG_FILE}")


def api_get(host: str, port: int, path: str, token: str | None, timeout: float = 3.0,
            cert_pem: str | None = None) -> tuple[int, object]:
    """GET a Jupyter REST path (like "/api/status") with the token header: (HTTP status, JSON body).

    cert_pem: the experiment's certificate (https, trusting exactly that one); None for plain http.
    Status 0 when nothing answered (or the answer was not JSON); the body is None for an error status.
    """
    status, body = jupyter_tls.request(host, port, path, token, cert_pem, timeout)
    if status != 200:
        return status, None
    try:
        return status, json.loads(body or b"null")
    except ValueError:
        return 0, None


def api_status(host: str, port: int, token: str | None, timeout: float = 3.0,
               cert_pem: str | None = None) -> tuple[int, dict | None]:
    """GET /api/status; (HTTP status, body) — 0 when nothing answered."""
    status, body = api_get(host, port, "/api/status", token, timeout, cert_pem)
    return status, body if isinstance(body, dict) else None


class JupyterKind(Kind):
    name = "jupyter"
    title = "Jupyter"
    summary = "JupyterLab as your user, with a token only you can read."
    container_port = "8888/tcp"
    sealed_paths = (f"{TOKEN_DIR}/{TOKEN_FILE}",)

    def plan(self, config: Config, spec: LaunchSpec) -> Plan:
        token = secrets.token_urlsafe(32)
        experiment_files.write(config, spec.name, TOKEN_FILE, token, 0o600)
        files = [FileSpec(TOKEN_FILE, token.encode(), mode=0o400, **served.owned_by_user(config))]
        tls = jupyter_tls.use_tls(config)
        if tls:
            files += served.tls_files(config, spec.name, jupyter_tls.CERT_FILE, jupyter_tls.KEY_FILE)
        # Root-owned and read-only: the server cannot rewrite its own Host check or transport.
        files.append(FileSpec(jupyter_tls.CONFIG_FILE,
                              jupyter_tls.server_config(config, TOKEN_DIR if tls else None).encode(), mode=0o444))
        # Not the image's CMD (which turned the Host check off): the placed config sets it and TLS.
        return served.host_user_plan(config, self.container_port, TOKEN_DIR, files, COMMAND)

    def token(self, config: Config, name: str) -> str | None:
        return experiment_files.read(config, name, TOKEN_FILE)

    def certificate(self, config: Config, name: str) -> str | None:
        """The experiment's TLS certificate (PEM) when it serves https; None for plain http."""
        return experiment_files.read(config, name, jupyter_tls.CERT_FILE)

    def wait_ready(self, config: Config, record: ExperimentRecord, host: str, port: int,
                   timeout: float, is_alive: Callable[[], bool]) -> None:
        token, cert = self.token(config, record.name), self.certificate(config, record.name)

        def probe() -> str | None:
            status, _ = api_status(host, port, token, cert_pem=cert)
            return None if status == 200 else str(status)

        served.wait_until_ready(
            probe, is_alive, timeout, last="0",
            stopped="The Jupyter container stopped before the server answered.",
            too_late=lambda last: f"JupyterLab on port {port} did not answer within {timeout:.0f} s "
                                  f"(last HTTP status {last}).")

    def access(self, config: Config, record: ExperimentRecord, host: str) -> Access | None:
        token = self.token(config, record.name)
        if not record.port or not token:
            return None
        cert = self.certificate(config, record.name)
        return served.access(config, record, host, record.port, f"/lab?token={token}", secret_rows=(),
                             secret_fields={"token": token}, cert=cert, cert_file=jupyter_tls.CERT_FILE)

    def idle(self, site: Site, record: ExperimentRecord, container_id: str,
             now: float) -> tuple[float | None, str]:
        """Jupyter says itself when it was last used (/api/status `last_activity`, which covers
        kernels and terminals); a kernel that is busy right now counts as active."""
        token, cert = self.token(site.config, record.name), self.certificate(site.config, record.name)
        if not token or not record.port:
            return None, "no token or port recorded"
        # no_track_activity: asking must not itself count as activity.
        host, port, kernels = site.config.connect_host, record.port, None
        code, status = api_get(host, port, "/api/status?no_track_activity=1", token, 5.0, cert)
        if code == 200:
            code, kernels = api_get(host, port, "/api/kernels?no_track_activity=1", token, 5.0, cert)
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

    def read_back(self, site: Site, container_id: str, labels: Mapping[str, str]) -> Recovered:
        engine = site.engine
        try:
            token = engine.read_file(container_id, f"{TOKEN_DIR}/{TOKEN_FILE}").decode()
            cert = engine.read_file(container_id, f"{TOKEN_DIR}/{jupyter_tls.CERT_FILE}").decode() \
                if _has_tls(engine, container_id) else ""
        except UnicodeDecodeError:
            raise PtdeskError("The Jupyter token or certificate in the container is not text.") from None
        files = ((TOKEN_FILE, token, 0o600),) if token else ()
        return Recovered(files=files + served.recovered_certificate(cert, jupyter_tls.CERT_FILE))


def _has_tls(engine: Engine, container_id: str) -> bool:
    """Was it launched with a certificate (the placed config names one)?"""
    try:
        text = engine.read_file(container_id, f"{TOKEN_DIR}/{jupyter_tls.CONFIG_FILE}")
    except NotFound:  # launched before ptdesk placed one: plain http
        return False
    return b"c.ServerApp.certfile" in text


JUPYTER = JupyterKind()
