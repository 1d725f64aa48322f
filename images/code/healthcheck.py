"""The image's HEALTHCHECK: healthy while code-server answers HTTP on its port (its /healthz, with
a Host the Host check accepts). Plain HTTP first, then TLS (ptdesk serves TLS when it binds beyond
loopback; the certificate is ptdesk's own, so it is not verified here). Run with `python3 -I` from
the image's fixed path: nothing in /workspace is ever imported."""

import socket
import ssl
import sys

REQUEST = b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"


def answers(use_tls: bool) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 8080), timeout=4) as raw:
            sock = raw
            if use_tls:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(REQUEST)
            return sock.recv(5) == b"HTTP/"
    except (OSError, ssl.SSLError):
        return False


sys.exit(0 if answers(False) or answers(True) else 1)
