"""ptdesk.core.environment.images: real builds on the engine, CA bundle resolution, packaging of images/."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ptdesk.config import load_config
from ptdesk.core.base.models import LABEL_INSTANCE
from ptdesk.core.engine.client import Engine
from ptdesk.core.environment.images import (
    CA_NAME,
    LABEL_CONTEXT_HASH,
    LABEL_SOURCE_HASH,
    CaBundle,
    build_context,
    build_image,
    context_hash,
    expand_targets,
    image_status,
    images_root,
    resolve_ca_bundle,
    source_files,
    source_hash,
)
from ptdesk.errors import InvalidInput, PtdeskError
from tests.support.helpers import BASE_IMAGE, REPO, require_image, run_cli, wait_until

PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
NO_CA = CaBundle(path=None, source="none")


# --- a real build ------------------------------------------------------------------------------
@pytest.fixture
def ssh_test_tag(engine: Engine) -> Iterator[str]:
    """A unique tag for this test's ssh build; only that tag is removed afterwards."""
    require_image(engine, BASE_IMAGE)
    tag = f"ptdesk-test/ssh:{uuid.uuid4().hex[:10]}"
    yield tag
    if engine.image_exists(tag):
        # noprune: shared layers (ptdesk/ssh:latest built from the same inputs) stay untouched.
        engine.api.remove_image(tag, noprune=True)


def _export_members(engine: Engine, container: str) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    """Every path of the container's filesystem; contents only for small files under secret-prone dirs."""
    raw = engine.api.export(container)
    with tarfile.open(fileobj=_StreamReader(raw), mode="r|") as tar:
        for member in tar:
            data = None
            if member.isfile() and member.size < 64 * 1024 and \
                    re.match(r"(etc|root|home|workspace|usr/local|opt)/", member.name):
                handle = tar.extractfile(member)
                data = handle.read() if handle else None
            yield member, data


class _StreamReader(io.RawIOBase):
    """File-like view of the engine's byte-chunk stream, so tarfile can read it without buffering all."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._rest))
        buffer[:size], self._rest = self._rest[:size], self._rest[size:]
        return size


@pytest.mark.engine
def test_ssh_image_builds_from_local_base_runs_as_designed_and_holds_no_secrets(
        engine: Engine, ssh_test_tag: str, ptdesk_env: dict[str, str]) -> None:
    lines: list[str] = []
    result = build_image(engine, "ssh", ssh_test_tag, BASE_IMAGE, NO_CA, on_line=lines.append)
    assert result.tag == ssh_test_tag and not result.cached
    assert any(line.startswith("Step ") for line in lines), "build progress lines reach the caller"
    labels = engine.image_info(ssh_test_tag)["Config"]["Labels"]
    assert labels[LABEL_SOURCE_HASH] == source_hash("ssh")
    assert labels[LABEL_CONTEXT_HASH] == result.context_hash

    # Same inputs again: nothing is rebuilt, and the CLI says so in its JSON.
    env = {**ptdesk_env, "PTDESK_SSH_IMAGE": ssh_test_tag}
    code, out, err = run_cli(["images", "build", "ssh", "--base", BASE_IMAGE, "--json"], env)
    assert code == 0, err
    [again] = json.loads(out)
    assert again["cached"] is True and again["image_id"] == result.image_id
    status = image_status(engine, "ssh", ssh_test_tag)
    assert status.present and status.up_to_date is True and status.size and status.size > 0

    container = engine.create(name=f"ptdesk-test-{ptdesk_env['PTDESK_INSTANCE']}", image=ssh_test_tag,
                              labels={LABEL_INSTANCE: ptdesk_env["PTDESK_INSTANCE"]}, host_config={})
    passwd = engine.read_file(container, "/etc/passwd").decode()
    user = next(line.split(":") for line in passwd.splitlines() if line.startswith("ptdesk:"))
    assert user[2] == "1000" and user[5] == "/home/ptdesk", "non-root user ptdesk (uid 1000) exists"

    names: list[str] = []
    for member, data in _export_members(engine, container):
        names.append(member.name)
        assert not re.search(r"(^|/)(ssh_host_\w+_key(\.pub)?|id_(rsa|ecdsa|ed25519))$", member.name), member.name
        if data is not None:
            assert b"PRIVATE KEY-----" not in data, f"a private key is baked into {member.name}"
    assert "etc/ssh/sshd_config" in names and "usr/sbin/sshd" in names, "the export really listed the image"
    assert not any(n.startswith("etc/ptdesk/authorized_keys/") and n.rstrip("/") != "etc/ptdesk/authorized_keys"
                   for n in names), "no authorized_keys are baked in"

    # Started without the files ptdesk places, the entrypoint refuses instead of inventing a host key.
    engine.start(container)
    state = wait_until(lambda: (s := engine.inspect(container)["State"])["Status"] == "exited" and s,
                       timeout=30, message="the unprovisioned container to exit")
    assert state["ExitCode"] == 64
    logs = b"".join(engine.logs(container)).decode()
    assert "no host key was placed" in logs


# --- build context and hashes ------------------------------------------------------------------
def test_context_carries_the_ca_bundle_or_an_empty_file() -> None:
    files = source_files("jupyter")
    for ca, expected in ((NO_CA, b""), (CaBundle(Path("/x.pem"), "--ca-bundle", PEM), PEM)):
        with tarfile.open(fileobj=io.BytesIO(build_context(files, ca))) as tar:
            member = tar.extractfile(CA_NAME)
            assert member is not None and member.read() == expected
            assert set(tar.getnames()) == {*files, CA_NAME}
    assert build_context(files, NO_CA) == build_context(files, NO_CA), "contexts are reproducible"


def test_context_hash_follows_inputs_that_matter_only() -> None:
    with_ca = CaBundle(Path("/x.pem"), "--ca-bundle", PEM)
    args = {"BASE": BASE_IMAGE}
    ssh, jupyter = source_files("ssh"), source_files("jupyter")
    # The ssh Dockerfile never copies the CA: a new CA must not force an ssh rebuild.
    assert context_hash(ssh, NO_CA, args, "sha256:a") == context_hash(ssh, with_ca, args, "sha256:a")
    assert context_hash(jupyter, NO_CA, args, "sha256:a") != context_hash(jupyter, with_ca, args, "sha256:a")
    assert context_hash(ssh, NO_CA, args, "sha256:a") != context_hash(ssh, NO_CA, args, "sha256:b")
    assert context_hash(ssh, NO_CA, args, "") != context_hash(ssh, NO_CA, {"BASE": "other"}, "")
    changed = {**ssh, "sshd_config": ssh["sshd_config"] + b"\n# edited\n"}
    assert context_hash(changed, NO_CA, args, "") != context_hash(ssh, NO_CA, args, "")


def test_targets() -> None:
    assert expand_targets("all") == ("ssh", "jupyter", "code")  # code after jupyter: it is built FROM it
    assert expand_targets("ssh") == ("ssh",)
    with pytest.raises(InvalidInput, match="Unknown image 'cuda'"):
        expand_targets("cuda")


# --- CA bundle resolution ----------------------------------------------------------------------
@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("explicit", "config", "pipcert", "userconf", "globalconf", "requests", "sslcert"):
        out[name] = tmp_path / f"{name}.pem"
        out[name].write_bytes(PEM)
    return out


def _isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """HOME, venv and XDG dirs inside tmp_path: the machine's own pip.conf files are out of the way."""
    return {"HOME": str(tmp_path / "home"), "VIRTUAL_ENV": str(tmp_path / "venv"),
            "XDG_CONFIG_DIRS": str(tmp_path / "xdg"), **extra}


def _write_pip_conf(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_ca_resolution_order(tmp_path: Path, pems: dict[str, Path]) -> None:
    user_conf = _write_pip_conf(tmp_path / "home/.config/pip/pip.conf", f"[global]\ncert = {pems['userconf']}\n")
    global_conf = _write_pip_conf(tmp_path / "xdg/pip/pip.conf", f"[global]\ncert = {pems['globalconf']}\n")
    env = _isolated_env(tmp_path, PIP_CERT=str(pems["pipcert"]), REQUESTS_CA_BUNDLE=str(pems["requests"]),
                        SSL_CERT_FILE=str(pems["sslcert"]))
    config = load_config({"PTDESK_HOME": str(tmp_path / "ptdesk")})
    config_with_ca = replace(config, ca_bundle=pems["config"])

    def resolved(explicit: Path | None = None, cfg=config) -> tuple[Path | None, str]:
        ca = resolve_ca_bundle(explicit, cfg, env, pip_conf=None)
        return ca.path, ca.source

    assert resolved(pems["explicit"], config_with_ca) == (pems["explicit"], "--ca-bundle")
    assert resolved(None, config_with_ca) == (pems["config"], "config ca_bundle")
    assert resolved() == (pems["pipcert"], "PIP_CERT")
    del env["PIP_CERT"]
    assert resolved() == (pems["userconf"], str(user_conf))
    user_conf.unlink()
    assert resolved() == (pems["globalconf"], str(global_conf))
    env["PIP_CONFIG_FILE"] = "/dev/null"  # pip's switch for "no config files at all"
    assert resolved() == (pems["requests"], "REQUESTS_CA_BUNDLE")
    del env["REQUESTS_CA_BUNDLE"]
    assert resolved() == (pems["sslcert"], "SSL_CERT_FILE")
    del env["SSL_CERT_FILE"]
    ca = resolve_ca_bundle(None, config, env)
    assert (ca.path, ca.source, ca.data) == (None, "none", b"")


def test_pip_conf_install_section_wins_and_content_is_read(tmp_path: Path, pems: dict[str, Path]) -> None:
    conf = _write_pip_conf(tmp_path / "venv/pip.conf",
                           f"[global]\ncert = {pems['globalconf']}\n[install]\ncert = {pems['userconf']}\n")
    ca = resolve_ca_bundle(None, None, _isolated_env(tmp_path))
    assert (ca.path, ca.source, ca.data) == (pems["userconf"], str(conf), PEM)


def test_missing_or_bad_ca_bundle_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(PtdeskError, match=r"nope\.pem \(from --ca-bundle\) does not exist") as info:
        resolve_ca_bundle(missing, None, {})
    assert info.value.hint and "--ca-bundle" in info.value.hint
    with pytest.raises(PtdeskError, match=r"from PIP_CERT\) does not exist") as info:
        resolve_ca_bundle(None, None, {"PIP_CERT": str(missing)}, pip_conf=[])
    assert "PIP_CERT" in (info.value.hint or "")
    not_pem = tmp_path / "key.txt"
    not_pem.write_text("hello")
    with pytest.raises(PtdeskError, match="holds no PEM certificate"):
        resolve_ca_bundle(not_pem, None, {})


def test_cli_reports_missing_ca_and_unknown_target_in_one_line(ptdesk_env: dict[str, str], tmp_path: Path) -> None:
    # Both are refused before the engine is contacted: an unreachable engine must not mask them.
    env = {**ptdesk_env, "DOCKER_HOST": "unix:///nonexistent.sock"}
    code, out, err = run_cli(["images", "build", "ssh", "--ca-bundle", str(tmp_path / "missing.pem")], env)
    assert code == 1 and out == ""
    assert err.splitlines()[0] == f"ptdesk: The CA bundle {tmp_path / 'missing.pem'} (from --ca-bundle) does not exist."
    assert "Traceback" not in err
    code, out, err = run_cli(["images", "build", "cuda"], env)
    assert code == 2 and err.startswith("ptdesk: Unknown image 'cuda'.") and "Traceback" not in err


def test_cli_build_with_engine_down_is_one_clear_line(ptdesk_env: dict[str, str], tmp_path: Path) -> None:
    env = {**ptdesk_env, "DOCKER_HOST": "unix:///nonexistent.sock", "PIP_CONFIG_FILE": "/dev/null"}
    pem = tmp_path / "ca.pem"
    pem.write_bytes(PEM)
    code, _, err = run_cli(["images", "build", "all", "--ca-bundle", str(pem)], env, subprocess_=True)
    assert code == 3
    lines = [line for line in err.splitlines() if line.startswith("ptdesk:")]
    assert lines == ["ptdesk: Connecting to Docker: the Docker engine at unix:///nonexistent.sock is not "
                     "reachable."], err
    assert "Traceback" not in err


def test_a_base_image_that_cannot_be_pulled_says_what_to_do(engine: Engine, ptdesk_env: dict[str, str]) -> None:
    """No registry (or no such image): the error names the base and points at --base / docker load."""
    base = f"ptdesk-test/no-such-base-{uuid.uuid4().hex[:8]}:1"
    tag = f"ptdesk-test/ssh-unbuilt-{uuid.uuid4().hex[:8]}:1"  # the real tag is never touched
    code, out, err = run_cli(["images", "build", "ssh", "--base", base], {**ptdesk_env, "PTDESK_SSH_IMAGE": tag})
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(("ptdesk:", "  hint:"))]
    assert lines[0].startswith(f"ptdesk: Building {tag} failed: the base image {base} could not be pulled")
    assert engine.image_info(tag) is None
    assert "--base IMAGE" in lines[1] and "docker load" in lines[1]


# --- packaging: the Dockerfiles travel with a wheel --------------------------------------------
def test_images_root_is_the_checkout_here() -> None:
    assert images_root() == REPO / "images"


@pytest.mark.timeout(300)
def test_wheel_ships_the_image_sources_and_finds_them_installed(tmp_path: Path) -> None:
    """`pip install .` (not editable) must still be able to build images."""
    # Build from a copy: setuptools writes build/ and *.egg-info into the source tree it is given.
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests", "bench"))
    dist = tmp_path / "dist"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    [wheel] = dist.glob("ptdesk-*.whl")
    expected = {f"ptdesk/_images/{p.relative_to(REPO / 'images').as_posix()}"
                for p in (REPO / "images").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert {"ptdesk/_images/ssh/Dockerfile", "ptdesk/_images/jupyter/Dockerfile"} <= expected
    with zipfile.ZipFile(wheel) as archive:
        assert expected <= set(archive.namelist())
        target = tmp_path / "site"
        archive.extractall(target)  # a wheel is a zip laid out exactly as installed
    probe = ("import ptdesk.core.environment.images as m; r = m.images_root(); "
             "print(r); print(m.source_hash('ssh') == m.source_hash('ssh', r))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    root, same = proc.stdout.split()
    assert Path(root) == target / "ptdesk" / "_images"
    assert same == "True"
