"""The code kind: VS Code in the browser (code-server) as the host user's uid, in the Jupyter
image's Python environment, behind a password only its owner can read.

Protected exactly like Jupyter: the password is in code-server's config file, placed into the
created container before start (owned by the container user, 0400; never the environment, the
command line, labels or logs); TLS with ptdesk's pinned per-experiment certificate when bound beyond
loopback (jupyter_tls, the same `jupyter_tls` setting); a Host check (images/code/host-check.js,
fed the names ptdesk knows in a root-owned file) besides code-server's own Origin check on
WebSockets. Readiness is a real login, the workbench page and a WebSocket round trip
(code_http); idleness is code-server's own heartbeat (/healthz lastHeartbeat).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ptdesk.config import Config
from ptdesk.core.base.models import Access, LaunchSpec
from ptdesk.core.engine.files import FileSpec
from ptdesk.core.kinds import code_http, jupyter_tls, served
from ptdesk.core.kinds.base import Kind, Plan, Recovered
from ptdesk.core.store import experiment_files
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.errors import NotFound, PtdeskError

if TYPE_CHECKING:
    from ptdesk.core.site import Site

PASSWORD_FILE = "code_password"  # host side, under experiments/<name>/
CERT_FILE = "code_tls.crt"  # host side and in SECRET_DIR
KEY_FILE = "code_tls.key"  # in the container only
CONFIG_FILE = "code-server.yaml"
HOSTS_FILE = "code_hosts.json"  # read by images/code/host-check.js
SECRET_DIR = "/etc/ptdesk"
HOME = served.HOME
PORT = 8080
COMMAND = ("/opt/ptdesk/code/bin/code-server", "--config", f"{SECRET_DIR}/{CONFIG_FILE}", "/workspace")
_PASSWORD_LINE = re.compile(r'^password: "([A-Za-z0-9_-]+)"$', re.MULTILINE)


def server_config(password: str, tls_dir: str | None) -> str:
    """code-server's config file: every setting ptdesk relies on, the password among them."""
    lines = ["# Written by ptdesk for this experiment; see ptdesk.core.kinds.code.",
             f"bind-addr: 0.0.0.0:{PORT}", "auth: password", f"password: {json.dumps(password)}",
             "disable-telemetry: true", "disable-update-check: true", "disable-workspace-trust: true",
             "disable-getting-started-override: true", f"user-data-dir: {HOME}/.local/share/code-server"]
    if tls_dir:
        lines += [f"cert: {tls_dir}/{CERT_FILE}", f"cert-key: {tls_dir}/{KEY_FILE}"]
    return "\n".join(lines) + "\n"


class CodeKind(Kind):
    name = "code"
    title = "VS Code"
    summary = "VS Code in the browser as your user, with a password only you can read."
    container_port = f"{PORT}/tcp"
    sealed_paths = (f"{SECRET_DIR}/{CONFIG_FILE}",)

    def plan(self, config: Config, spec: LaunchSpec) -> Plan:
        password = secrets.token_urlsafe(32)
        experiment_files.write(config, spec.name, PASSWORD_FILE, password, 0o600)
        tls = jupyter_tls.use_tls(config)
        files = [FileSpec(CONFIG_FILE, server_config(password, SECRET_DIR if tls else None).encode(),
                          mode=0o400, **served.owned_by_user(config))]
        if tls:
            files += served.tls_files(config, spec.name, CERT_FILE, KEY_FILE)
        # Root-owned and read-only: the server cannot widen its own Host check.
        files.append(FileSpec(HOSTS_FILE, json.dumps(list(jupyter_tls.known_names(config))).encode(), mode=0o444))
        return served.host_user_plan(config, self.container_port, SECRET_DIR, files, COMMAND)

    def password(self, config: Config, name: str) -> str | None:
        return experiment_files.read(config, name, PASSWORD_FILE)

    def certificate(self, config: Config, name: str) -> str | None:
        """The experiment's TLS certificate (PEM) when it serves https; None for plain http."""
        return experiment_files.read(config, name, CERT_FILE)

    def wait_ready(self, config: Config, record: ExperimentRecord, host: str, port: int,
                   timeout: float, is_alive: Callable[[], bool]) -> None:
        """Ready when a person would get in: the password logs in, the workbench page loads with the
        session cookie, and the editor's WebSocket answers its first message."""
        password, cert = self.password(config, record.name) or "", self.certificate(config, record.name)

        def probe() -> str | None:
            cookie = code_http.login(host, port, password, cert)
            if cookie is None:
                return "the password did not log in (not up yet?)"
            if (page := code_http.workbench(host, port, cookie, cert)).status != 200:
                return f"the workbench answered HTTP {page.status}"
            return code_http.websocket_round_trip(host, port, cookie, cert)

        served.wait_until_ready(
            probe, is_alive, timeout, last="nothing answered",
            stopped="The VS Code container stopped before the editor answered.",
            too_late=lambda last: f"VS Code (code-server) on port {port} was not ready within {timeout:.0f} s "
                                  f"({last}).")

    def access(self, config: Config, record: ExperimentRecord, host: str) -> Access | None:
        password = self.password(config, record.name)
        if not record.port or not password:
            return None
        cert = self.certificate(config, record.name)
        return served.access(config, record, host, record.port, "/?folder=/workspace",
                             secret_rows=(("Password", password),), secret_fields={"password": password},
                             cert=cert, cert_file=CERT_FILE)

    def idle(self, site: Site, record: ExperimentRecord, container_id: str,
             now: float) -> tuple[float | None, str]:
        """code-server's own heartbeat: it beats while an editor window is connected, so the time
        since the last beat is how long nobody has had the editor open."""
        if not record.port:
            return None, "no port recorded"
        cert = self.certificate(site.config, record.name)
        last = code_http.heartbeat(site.config.connect_host, record.port, cert)
        if last is None:
            return None, "code-server did not tell its last heartbeat"
        return max(0.0, now - last), "code-server lastHeartbeat"

    def after_start(self, config: Config, record: ExperimentRecord) -> None:
        """Nothing to keep in step: the password and the port never change."""

    def read_back(self, site: Site, container_id: str, labels: Mapping[str, str]) -> Recovered:
        engine = site.engine
        try:
            text = engine.read_file(container_id, f"{SECRET_DIR}/{CONFIG_FILE}").decode()
            try:
                cert = engine.read_file(container_id, f"{SECRET_DIR}/{CERT_FILE}").decode()
            except NotFound:  # served plain http
                cert = ""
        except UnicodeDecodeError:
            raise PtdeskError("The VS Code settings or certificate in the container are not text.") from None
        match = _PASSWORD_LINE.search(text)
        files = ((PASSWORD_FILE, match.group(1), 0o600),) if match else ()
        return Recovered(files=files + served.recovered_certificate(cert, CERT_FILE))


CODE = CodeKind()
