"""The build CA bundle goes into the Jupyter image, readable by everyone who runs it: only its
certificates are copied, never a PRIVATE KEY block a careless bundle holds."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptdesk.core.base.keys import generate
from ptdesk.core.base.models import LABEL_INSTANCE
from ptdesk.core.engine.client import Engine
from ptdesk.core.environment.images import CA_NAME, build_context, build_image, resolve_ca_bundle, source_files
from tests.support.helpers import BASE_IMAGE, require_image

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")  # holds the proxy's CA pip needs here


@pytest.fixture
def careless_bundle(tmp_path: Path) -> Path:
    """The host's certificates with a private key (and a comment) in the middle, as a proxy's
    "cert and key in one file" would be."""
    key = generate(comment="proxy").private_pem
    certificates = HOST_CA.read_bytes()
    middle = certificates.index(b"-----BEGIN CERTIFICATE-----", 1000)
    path = tmp_path / "bundle.pem"
    path.write_bytes(certificates[:middle] + b"# the proxy's own key\n" + key + certificates[middle:])
    assert b"PRIVATE KEY-----" in path.read_bytes()
    return path


def test_the_build_context_holds_certificates_only(careless_bundle: Path) -> None:
    ca = resolve_ca_bundle(careless_bundle)
    assert b"PRIVATE KEY" not in ca.data and b"# the proxy" not in ca.data
    assert ca.data == HOST_CA.read_bytes()  # every certificate kept, byte for byte
    for target in ("jupyter", "ssh"):
        with tarfile.open(fileobj=io.BytesIO(build_context(source_files(target), ca))) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member)
                assert handle is None or b"PRIVATE KEY" not in handle.read(), member.name


@pytest.fixture
def jupyter_tag(engine: Engine) -> Iterator[str]:
    require_image(engine, BASE_IMAGE)
    tag = f"ptdesk-test/jupyter:{uuid.uuid4().hex[:10]}"
    yield tag
    if engine.image_exists(tag):
        engine.api.remove_image(tag, noprune=True)


@pytest.mark.engine
def test_the_jupyter_image_holds_no_private_key(engine: Engine, careless_bundle: Path, jupyter_tag: str,
                                                ptdesk_env: dict[str, str]) -> None:
    build_image(engine, "jupyter", jupyter_tag, BASE_IMAGE, resolve_ca_bundle(careless_bundle))
    container = engine.create(name=f"ptdesk-test-ca-{ptdesk_env['PTDESK_INSTANCE']}", image=jupyter_tag,
                              labels={LABEL_INSTANCE: ptdesk_env["PTDESK_INSTANCE"]}, host_config={})
    stream, _ = engine.api.get_archive(container, "/usr/local/share/ptdesk")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        names = []
        for member in tar.getmembers():
            names.append(member.name)
            handle = tar.extractfile(member)
            assert handle is None or b"PRIVATE KEY" not in handle.read(), member.name
    assert f"ptdesk/{CA_NAME}" in names
