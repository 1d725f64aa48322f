"""docker-py's failures as PtdeskErrors: one sentence each, once, so no caller has to know the
SDK's exceptions (ptdesk.core.engine.client wraps every call in `translated_errors`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ptdesk.core.engine.sdk import docker_sdk
from ptdesk.errors import Conflict, EngineUnavailable, GpuUnavailable, ImageMissing, NotFound, PtdeskError

ENGINE_HINT = "Start the Docker engine (sudo systemctl start docker) and try again."


@contextmanager
def translated_errors(what: str, where: str | None = None) -> Iterator[None]:
    """Turn docker-py/requests failures into one-sentence PtdeskErrors; `where`: the engine's
    address, as the sentence names it (default: DOCKER_HOST, else the local socket)."""
    # Imported here, not at the top: only a call that talks to an engine pays for the SDK (which
    # imports requests itself, so these cost nothing more then).
    import requests
    import urllib3.exceptions

    docker = docker_sdk()
    # paramiko's errors: an ssh:// engine whose SSH session could not be opened or broke
    # (ptdesk.core.engine.remote). Without paramiko imported (or while another thread still imports
    # it) there is no such engine in this process.
    # NoValidConnectionsError (nothing answers at the address) is a socket error, not an SSHException.
    raised = getattr(sys.modules.get("paramiko"), "ssh_exception", None)
    ssh_errors: tuple[type[Exception], ...] = tuple(
        getattr(raised, name) for name in ("SSHException", "NoValidConnectionsError") if hasattr(raised, name))

    try:
        yield
    except PtdeskError:
        raise
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(f"{what}: image not found ({explain(exc)}).",
                           "Build it with: ptdesk images build") from None
    except docker.errors.NotFound as exc:
        raise NotFound(f"{what}: {explain(exc)}.", "List experiments with: ptdesk ls --all") from None
    except docker.errors.APIError as exc:
        text = explain(exc)
        if "could not select device driver" in text or "nvidia-container-cli" in text:
            raise GpuUnavailable(
                f"{what}: the Docker engine has no GPU runtime ({text}).",
                "Install the NVIDIA Container Toolkit, or launch with --gpus none.",
            ) from None
        if exc.status_code == 409 and "is already in use" in text:
            raise Conflict(f"{what}: that container name is already taken on this engine.",
                           "Pick another --name.") from None
        if "permission denied" in text.lower() and "docker.sock" in text:
            raise EngineUnavailable(f"{what}: permission denied on the Docker socket.",
                                    "Add yourself to the docker group (then log in again) or use sudo.") from None
        raise PtdeskError(f"{what}: the engine refused ({text}).") from None
    except docker.errors.DockerException as exc:
        raise _unavailable(what, exc, where) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError,
            urllib3.exceptions.HTTPError, *ssh_errors) as exc:
        # urllib3's errors are how a stream (logs, events) breaks when the engine goes away mid-read.
        raise _unavailable(what, exc, where) from None


# Go's os.FileMode type bits, as the engine reports them in the archive stat (a regular file has none).
def explain(exc: Exception) -> str:
    docker = docker_sdk()

    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        text = exc.explanation
        return text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return str(exc)


def _unavailable(what: str, exc: Exception, where: str | None = None) -> EngineUnavailable:
    text = str(exc)
    if "Permission denied" in text or "PermissionError" in text:
        return EngineUnavailable(f"{what}: permission denied on the Docker socket.",
                                 "Add yourself to the docker group (then log in again) or use sudo.")
    where = where or local_engine_address()
    return EngineUnavailable(f"{what}: the Docker engine at {where} is not reachable.", ENGINE_HINT)


def local_engine_address() -> str:
    """Where docker-py's from_env connects: DOCKER_HOST, else the local socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
