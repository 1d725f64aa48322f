"""Jupyter beyond loopback: https with a certificate ptdesk made for the experiment (fingerprint
shown like an SSH host key, pinned by ptdesk's own probe and cull), and the Host header check on,
with the names ptdesk knows, whatever the transport."""

from __future__ import annotations

import hashlib
import http.client
import sqlite3
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Ptdesk

from ptdesk.config import load_config
from ptdesk.core.engine.client import Engine
from ptdesk.core.kinds.jupyter import JUPYTER
from ptdesk.core.store import experiment_files
from ptdesk.core.workstation import Workstation


def _network_address() -> str:
    """An IPv4 address of this machine that is not loopback (what a team would bind to)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    addresses = [line.split()[3].split("/")[0] for line in out.splitlines()]
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address")
    return addresses[0]


def _get(host: str, port: int, path: str, token: str, *, cert: str | None, host_header: str | None = None) -> int:
    if cert is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(host, port, timeout=10)
    else:
        context = ssl.create_default_context(cadata=cert)  # trusts exactly this certificate
        conn = http.client.HTTPSConnection(host, port, timeout=10, context=context)
    try:
        headers = {"Authorization": f"token {token}"}
        if host_header:
            headers["Host"] = host_header
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_beyond_loopback_jupyter_serves_https_with_its_pinned_certificate(cli: Ptdesk, engine: Engine) -> None:
    address = _network_address()
    env = {"PTDESK_BIND_ADDRESS": address}
    lab = cli.new("jupyter", "--name", "tls", extra_env=env)
    access = lab["jupyter"]
    port, token = access["port"], access["token"]
    assert access["url"] == f"https://{address}:{port}/lab?token={token}"

    # The certificate the server presents is the one ptdesk shows and keeps.
    served = ssl.get_server_certificate((address, port))
    der = ssl.PEM_cert_to_DER_cert(served)
    expected = "SHA256:" + ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert access["certificate_fingerprint"] == expected
    cert = Path(access["certificate"]).read_text()
    assert ssl.PEM_cert_to_DER_cert(cert) == der

    assert _get(address, port, "/api/status", token, cert=cert) == 200
    # The Host check is on: a name ptdesk does not know (DNS rebinding) is refused.
    assert _get(address, port, "/api/status", token, cert=cert, host_header="evil.example") == 403
    # Plain http on that port gets nowhere.
    with pytest.raises((http.client.HTTPException, OSError)):
        assert _get(address, port, "/api/status", token, cert=None) != 200

    # Cull's API calls go over the same pinned https.
    ws = Workstation(load_config({**cli.env, **env}))
    try:
        record = ws.store.experiment("tls")
        assert record is not None
        rows = dict(JUPYTER.access(ws.config, record, address).rows)  # what people read
        assert rows["Certificate"] == expected
        seconds, how = JUPYTER.idle(ws, record, lab["id"], time.time())
        assert seconds is not None and how == "Jupyter last_activity", how
    finally:
        ws.close()


def test_on_loopback_the_host_check_is_on_too(cli: Ptdesk, engine: Engine) -> None:
    """The image's command line turned the check off (allow_remote_access=True): a web page the
    user visits could rebind its name to 127.0.0.1 and drive the server with the user's browser."""
    lab = cli.new("jupyter", "--name", "plain")
    access = lab["jupyter"]
    port, token = access["port"], access["token"]
    assert access["url"].startswith("http://127.0.0.1:") and "certificate" not in access
    assert _get("127.0.0.1", port, "/api/status", token, cert=None) == 200
    assert _get("127.0.0.1", port, "/api/status", token, cert=None, host_header=f"localhost:{port}") == 200
    assert _get("127.0.0.1", port, "/api/status", token, cert=None, host_header=f"evil.example:{port}") == 403


def test_a_lost_record_of_a_tls_experiment_is_adopted_with_its_certificate(cli: Ptdesk, engine: Engine) -> None:
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text('jupyter_tls = "on"\n')  # TLS on loopback too, when asked
    lab = cli.new("jupyter", "--name", "lost-tls")
    before = lab["jupyter"]
    assert before["url"].startswith("https://127.0.0.1:")
    conn = sqlite3.connect(cli.home / "state.db")
    with conn:
        conn.execute("DELETE FROM experiments WHERE name = 'lost-tls'")
    conn.close()
    experiment_files.discard(cli.config, "lost-tls")  # the store and its files are gone

    report = cli.json("reconcile")
    assert report["adopted"] == ["lost-tls"], report
    after = cli.listed()["lost-tls"]["jupyter"]
    assert after["url"] == before["url"]
    assert after["certificate_fingerprint"] == before["certificate_fingerprint"]
    cert = Path(after["certificate"]).read_text()
    assert _get("127.0.0.1", after["port"], "/api/status", after["token"], cert=cert) == 200
