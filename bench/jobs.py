"""Batch jobs: submit -> the job's process running, against `docker run -d` of the same image and
command (alternating rounds, ratio of medians in one run); and what the code snapshot costs for a
100 MB / 10,000-file folder (taken, and placed in a container), against plain `tar` of it.

    PYTHONPATH=. .venv/bin/python bench/jobs.py [--rounds 5] [--image ptdesk-test/ssh:latest]

"Running" is proven the same way on both sides: the command touches a file first, and the
benchmark polls for it with `docker exec ... test -e` every 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

COMMAND = ("sh", "-c", "touch /tmp/started; sleep 60")


def started(container: str) -> bool:
    return subprocess.run(["docker", "exec", container, "test", "-e", "/tmp/started"],
                          capture_output=True).returncode == 0


def wait_started(container: str, began: float) -> float:
    while not started(container):
        time.sleep(0.05)
    return time.monotonic() - began


def ptdesk_round(env: dict[str, str], code: Path, instance: str) -> float:
    """`ptdesk run` as a person types it (a subprocess), until the job's process runs."""
    began = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "ptdesk.cli", "run", "--gpus", "none", "--cpus", "1", "--code",
                          str(code), "--", *COMMAND], env=env, capture_output=True, text=True, check=True)
    name = out.stdout.split()[0]
    return wait_started(_container_of(instance, name), began)


def _container_of(instance: str, name: str) -> str:
    ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=ptdesk.instance={instance}",
                          "--filter", f"label=ptdesk.name={name}"], capture_output=True, text=True).stdout.split()
    return ids[0]


def raw_round(image: str, label: str) -> float:
    """`docker run -d` of the same image and command, hardened alike (init, non-root, no caps)."""
    began = time.monotonic()
    container = subprocess.run(["docker", "run", "-d", "--init", "--user", "1000:1000", "--cap-drop", "ALL",
                                "--security-opt", "no-new-privileges:true", "--label", label, "--entrypoint", "sh",
                                image, *COMMAND[1:]], capture_output=True, text=True, check=True).stdout.strip()
    return wait_started(container, began)


def make_folder(root: Path, files: int = 10_000, total: int = 100 * 1024**2) -> Path:
    size = total // files
    for i in range(files):
        folder = root / f"pkg{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.py").write_bytes(os.urandom(size))
    return root


def snapshot_costs(root: Path, image: str) -> None:
    from ptdesk.core.engine.client import Engine
    from ptdesk.core.jobs import snapshot

    folder = make_folder(root / "big")
    archive = root / "code.tar"
    began = time.monotonic()
    taken = snapshot.take(folder, archive, 1024**3)
    take = time.monotonic() - began
    began = time.monotonic()
    subprocess.run(["tar", "-C", str(folder), "-cf", str(root / "plain.tar"), "."], check=True)
    plain = time.monotonic() - began
    engine = Engine.connect()
    container = engine.create(name=f"bench-snap-{uuid.uuid4().hex[:8]}", image=image, labels={"bench": "jobs"},
                              host_config={}, command=["true"])
    try:
        began = time.monotonic()
        with open(archive, "rb") as data:
            engine.put_archive(container, "/", data)
        place = time.monotonic() - began
    finally:
        engine.remove(container, force=True)
        engine.close()
    print(f"snapshot of {taken.files} files, {taken.bytes / 1024**2:.0f} MB: taken {take:.2f} s "
          f"(plain tar {plain:.2f} s, ratio {take / plain:.2f}x), placed in a container {place:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default="ptdesk-test/ssh:latest")
    args = parser.parse_args()
    instance = f"bench-{uuid.uuid4().hex[:8]}"
    label = f"ptdesk-bench-raw={instance}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        code = root / "code"
        code.mkdir()
        (code / "train.py").write_text("print('hello')\n")
        env = {**os.environ, "PTDESK_HOME": str(root / "home"), "PTDESK_INSTANCE": instance,
               "PTDESK_SSH_IMAGE": args.image}
        ours, raw = [], []
        try:
            for _ in range(args.rounds):
                ours.append(ptdesk_round(env, code, instance))
                raw.append(raw_round(args.image, label))
        finally:
            for key in (f"label=ptdesk.instance={instance}", f"label={label.split('=')[0]}"):
                ids = subprocess.run(["docker", "ps", "-aq", "--filter", key], capture_output=True,
                                     text=True).stdout.split()
                if ids:
                    subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        print(f"submit -> running, {args.rounds} alternating rounds:")
        print(f"  ptdesk run (CLI): median {statistics.median(ours):.2f} s  ({', '.join(f'{t:.2f}' for t in ours)})")
        print(f"  docker run -d:    median {statistics.median(raw):.2f} s  ({', '.join(f'{t:.2f}' for t in raw)})")
        print(f"  ratio: {statistics.median(ours) / statistics.median(raw):.2f}x")
        snapshot_costs(root, args.image)


if __name__ == "__main__":
    main()
