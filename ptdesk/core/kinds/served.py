"""What every kind served over HTTP(S) behind a secret shares (Jupyter, VS Code): the server runs
straight as the host user with a private home, its secret files are placed in the created
container before start, TLS with ptdesk's per-experiment certificate when bound beyond loopback
(jupyter_tls), a readiness wait that polls a real request, and the access rows people read.

Each kind keeps its own differences in its module: the secret (token, password), the server's
config and command line, what "ready" means and how idleness is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ptdesk.config import LOCAL, Config
from ptdesk.core.access import tunnel
from ptdesk.core.base.models import Access
from ptdesk.core.base.waiting import next_delay
from ptdesk.core.engine.files import FileSpec
from ptdesk.core.kinds import jupyter_tls
from ptdesk.core.kinds.base import Plan
from ptdesk.core.store import experiment_files
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.errors import LaunchFailed

HOME = "/home/ptdesk"


def url_host(host: str) -> str:
    """The host as it goes into a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def owned_by_user(config: Config) -> dict[str, int]:
    """FileSpec owner arguments: the container user, who is the host user."""
    return {"uid": config.uid, "gid": config.gid}


def tls_files(config: Config, name: str, cert_file: str, key_file: str) -> list[FileSpec]:
    """Make the experiment's certificate: the certificate and its key for the container; only the
    certificate stays on the host, as it is what clients pin. The key is the server's."""
    cert = jupyter_tls.make_certificate(config, name)
    experiment_files.write(config, name, cert_file, cert.pem, 0o644)
    return [FileSpec(cert_file, cert.pem.encode(), mode=0o444),
            FileSpec(key_file, cert.key_pem, mode=0o400, **owned_by_user(config))]


def host_user_plan(config: Config, container_port: str, secret_dir: str, files: Sequence[FileSpec],
                   command: tuple[str, ...]) -> Plan:
    """Run straight as the host user: no root step, no capabilities at all, and a private home for
    the host uid (which may not match the image's user). ptdesk's own command line, not the image's
    CMD: the placed files set the secret, the Host check and TLS."""
    return Plan(
        container_port=container_port,
        user=f"{config.uid}:{config.gid}",
        environment={"HOME": HOME},
        tmpfs={HOME: f"uid={config.uid},gid={config.gid},mode=0700,size=1g"},
        files=((secret_dir, tuple(files)),),
        command=command,
    )


def wait_until_ready(probe: Callable[[], str | None], is_alive: Callable[[], bool], timeout: float, *,
                     stopped: str, too_late: Callable[[str], str], last: str) -> None:
    """Poll `probe` (None when ready, else what went wrong) until ready, the container stops
    (LaunchFailed `stopped`) or `timeout` passes (LaunchFailed too_late(the last thing that went wrong))."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        problem = probe()
        if problem is None:
            return
        last = problem
        if not is_alive():
            raise LaunchFailed(stopped, "Read its output with: ptdesk logs NAME")
        time.sleep(next_delay(time.monotonic() - started))
    raise LaunchFailed(too_late(last), "Check `ptdesk logs NAME`; raise ready_timeout if the host is slow.")


def access(config: Config, record: ExperimentRecord, host: str, port: int, path: str, *,
           secret_rows: tuple[tuple[str, str], ...], secret_fields: dict[str, object],
           cert: str | None, cert_file: str) -> Access:
    """How to open the server: its URL (https when it has a certificate; `path` after the port),
    the secret, how to reach it from a laptop, and the certificate to compare."""
    url = f"{'https' if cert else 'http'}://{url_host(host)}:{port}{path}"
    rows = (("Open", url), *secret_rows, ("Host", f"{host}:{port}"))
    fields: dict[str, object] = {"url": url, "host": host, "port": port, **secret_fields}
    laptop = tunnel.laptop_line(config, port)
    if laptop:  # the URL opens only on the box: say what opens it in the person's own browser
        rows += (("From your laptop", f"{laptop}  (then open the URL there)"),)
        fields["tunnel"] = laptop
    elif config.workstation != LOCAL and tunnel.loopback(config.bind_address):
        forward = f"ptdesk forward {record.name} --on {config.workstation}"
        rows += (("Open it here", f"{forward}  (its port is on {config.workstation}'s loopback)"),)
        fields["forward"] = forward
    if cert:  # compared by people like an SSH host key; the file is for clients that pin it
        where = str(experiment_files.folder(config, record.name) / cert_file)
        rows += (("Certificate", jupyter_tls.fingerprint(cert)), ("Certificate file", where))
        fields |= {"certificate_fingerprint": jupyter_tls.fingerprint(cert), "certificate": where}
    return Access(connect=url, rows=rows, fields=fields)


def recovered_certificate(cert: str, cert_file: str) -> tuple[tuple[str, str, int], ...]:
    """The certificate read back from a container, as a Recovered file; none when it served http.
    ValueError for garbage: adoption reports it as unreadable."""
    if not cert:
        return ()
    jupyter_tls.fingerprint(cert)
    return ((cert_file, cert, 0o644),)
