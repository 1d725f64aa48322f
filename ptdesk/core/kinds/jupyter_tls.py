"""Jupyter's transport: TLS with a certificate ptdesk makes per experiment, the Host check, and the
one HTTP client ptdesk itself talks to Jupyter with (readiness probe, cull).

Bound beyond loopback, plain HTTP hands the token to anyone on the path. So ptdesk makes a
self-signed certificate for each experiment (ECDSA P-256, the names ptdesk knows the server by),
places it and its key in the created container before start, like the token, and keeps only the
certificate on the host: people compare its SHA-256 fingerprint as they would an SSH host key,
and ptdesk's own requests trust exactly that certificate (the chain must be that one certificate
and its fingerprint must match), never "any certificate".

The Host check stays on whatever the transport (it is what stops DNS rebinding from a web page):
Jupyter takes loopback addresses and `local_hostnames`; it takes no other IP address at all, so the
configuration ptdesk places also accepts exactly the addresses ptdesk knows (the bind address).
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import ipaddress
import json
import ssl
from dataclasses import dataclass

from ptdesk.config import Config

CERT_FILE = "jupyter_tls.crt"  # host side (experiments/<name>/) and in the container's TOKEN_DIR
KEY_FILE = "jupyter_tls.key"  # in the container only
CONFIG_FILE = "jupyter_server_config.py"
VALID_DAYS = 825  # the longest lifetime browsers accept for a server certificate


@dataclass(frozen=True)
class Certificate:
    pem: str  # the certificate (public)
    key_pem: bytes  # its private key: goes into the container only

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.pem)


def use_tls(config: Config) -> bool:
    """`jupyter_tls` on/off, or auto: on exactly when bound beyond loopback."""
    if config.jupyter_tls in ("on", "off"):
        return config.jupyter_tls == "on"
    return not ipaddress.ip_address(config.bind_address).is_loopback


def known_names(config: Config) -> tuple[str, ...]:
    """The names and addresses people reach the server by: localhost, bind address, connect host."""
    names = ["localhost", "127.0.0.1"]
    if not ipaddress.ip_address(config.bind_address).is_unspecified:
        names.append(config.bind_address)
    names.append(config.connect_host)
    return tuple(dict.fromkeys(n.lower() for n in names))


def make_certificate(config: Config, name: str) -> Certificate:
    # cryptography's x509 is imported here, by the launch that needs a certificate, not at start-up.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} (ptdesk)"[:64])])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = []
    for known in known_names(config):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(known)))
        except ValueError:
            alt.append(x509.DNSName(known))
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return Certificate(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem)


def fingerprint(cert_pem: str) -> str:
    """SHA-256 of the certificate, as browsers and `openssl x509 -fingerprint -sha256` show it."""
    der = ssl.PEM_cert_to_DER_cert(cert_pem)
    return "SHA256:" + ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def server_config(config: Config, tls_dir: str | None) -> str:
    """The jupyter_server_config.py ptdesk places (root-owned, read-only): Host check on with the
    names ptdesk knows; with tls_dir, the certificate and key there."""
    names = known_names(config)
    ips = sorted(n for n in names if _is_ip(n) and not ipaddress.ip_address(n).is_loopback)
    lines = [
        "# Written by ptdesk for this experiment; see ptdesk.core.kinds.jupyter_tls.",
        "c.ServerApp.allow_remote_access = False  # keep the Host header check",
        f"c.ServerApp.local_hostnames = {json.dumps([n for n in names if not _is_ip(n)])}",
    ]
    if tls_dir:
        lines += [f"c.ServerApp.certfile = {json.dumps(f'{tls_dir}/{CERT_FILE}')}",
                  f"c.ServerApp.keyfile = {json.dumps(f'{tls_dir}/{KEY_FILE}')}"]
    if ips:  # Jupyter refuses every non-loopback IP in Host; these are ptdesk's own addresses
        lines += [
            "from jupyter_server.base.handlers import JupyterHandler",
            f"_PTDESK_ADDRESSES = frozenset({json.dumps(ips)})",
            "_jupyter_check_host = JupyterHandler.check_host",
            "def _check_host(self):",
            "    host = self.request.host",
            "    host = host if host.endswith(']') else host.rsplit(':', 1)[0]",
            "    return host.strip('[]').lower() in _PTDESK_ADDRESSES or _jupyter_check_host(self)",
            "JupyterHandler.check_host = _check_host",
        ]
    return "\n".join(lines) + "\n"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def connect(host: str, port: int, cert_pem: str | None, timeout: float = 3.0) -> http.client.HTTPConnection:
    """A connected HTTP(S) connection; with cert_pem, TLS that presented exactly that certificate.
    Raises OSError (ssl.SSLError included) when nothing answered or another certificate came."""
    conn: http.client.HTTPConnection
    if cert_pem is None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        context = ssl.create_default_context(cadata=cert_pem)
        context.check_hostname = False  # the exact certificate is checked below, whatever the name
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    try:
        conn.connect()
        if cert_pem is not None:
            presented = conn.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
            if not presented or hashlib.sha256(presented).digest() != \
                    hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem)).digest():
                raise ssl.SSLError("the server presented another certificate than the pinned one")
    except (OSError, ValueError) as exc:
        conn.close()
        raise OSError(str(exc)) from None
    return conn


def request(host: str, port: int, path: str, token: str | None, cert_pem: str | None,
            timeout: float = 3.0) -> tuple[int, bytes | None]:
    """GET `path`: (HTTP status, body); 0 when nothing answered, or when TLS did not present
    exactly the pinned certificate. cert_pem None: plain HTTP."""
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        conn = connect(host, port, cert_pem, timeout)
    except OSError:
        return 0, None
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException, ValueError):
        return 0, None
    finally:
        conn.close()
