"""Launch latency: `ptdesk new <kind>` against a raw `docker run` of the same image, in one run.

For each kind, N alternating rounds of
  (a) ptdesk: the real CLI as a subprocess, `ptdesk new KIND --json`; it returns only once the
      service is proven ready (a key login with the host key pinned / an authenticated
      /api/status), so the time is until it returns;
  (b) raw: the same secrets placed the plain way (files written on the host and bind-mounted),
      `docker run -d -p 127.0.0.1::PORT ...` of the same image with the same hardening flags, then
      polling every 50 ms for the same proof (login / authenticated /api/status). Twice per round:
      "raw" on the same isolated network as every experiment (a bridge with inter-container traffic
      off, as DESIGN.md asks; about 50 ms of each start here), "bridge" on the engine's default
      bridge without that isolation (this benchmark's baseline before). Its login is what a
      hand-written script does: paramiko's SSHClient.connect on a connection of its own;
      `--raw-nodelay` gives it ptdesk's connection (Nagle's algorithm off,
      ptdesk.core.host.ports.tcp_connect) instead;
  (c) core: ptdesk's own launch() called in this process (what the dashboard does), to tell
      ptdesk's work apart from the Python interpreter starting and importing for the CLI.
Both CLIs run from their compiled bytecode (bench/bytecode.py), as an installed ptdesk does.
Each round cleans up after itself (untimed). Prints per-round times, the medians, ptdesk/raw
(the headline figure), ptdesk/bridge and core/raw.

    .venv/bin/python bench/launch.py [--rounds 5] [--kinds ssh,jupyter]

Needs the Docker engine and the ptdesk/ssh + ptdesk/jupyter images (`ptdesk images build`), or others
named by PTDESK_SSH_IMAGE / PTDESK_JUPYTER_IMAGE (e.g. the test images scripts/test builds).
Everything it creates carries a unique label/instance and is removed at the end, even on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bytecode import compile_checkouts  # bench/, this script's own folder

from ptdesk.config import Config, load_config
from ptdesk.core.access.authorized_keys import owner_key as ssh_owner_key
from ptdesk.core.access.sshcheck import load as load_paramiko
from ptdesk.core.access.sshcheck import try_login
from ptdesk.core.base import keys, private_files
from ptdesk.core.engine.network import NETWORK_NAME, experiments_network
from ptdesk.core.environment.images import image_tag
from ptdesk.core.experiments import operations
from ptdesk.core.experiments.spec import make_spec
from ptdesk.core.kinds.jupyter import api_status
from ptdesk.core.kinds.ssh import SSHD_CAPS
from ptdesk.core.workstation import Workstation

PTDESK = str(Path(sys.executable).parent / "ptdesk")
POLL = 0.05  # the baseline polls tightly: the best a hand-written script would do
TIMEOUT = 120.0


def plain_login(port: int, key_file: Path, host_public_line: str) -> bool:
    """A hand-written script's key login with the host key pinned: paramiko's SSHClient as its
    documentation shows it, connecting by itself."""
    import paramiko

    client = paramiko.SSHClient()
    key_type, blob = host_public_line.split()[:2]
    client.get_host_keys().add(f"[127.0.0.1]:{port}", key_type,
                               paramiko.PKey.from_type_string(key_type, base64.b64decode(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect("127.0.0.1", port=port, username="ptdesk", key_filename=str(key_file), allow_agent=False,
                       look_for_keys=False, timeout=5, banner_timeout=5, auth_timeout=5)
        return True
    except (paramiko.SSHException, OSError, EOFError):
        return False
    finally:
        client.close()


def docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def poll(ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {TIMEOUT:.0f} s")
        time.sleep(POLL)


class Bench:
    def __init__(self, root: Path, raw_nodelay: bool = False) -> None:
        self.root = root
        self.instance = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "PTDESK_HOME": str(root / "home"), "PTDESK_INSTANCE": self.instance}
        self.env.pop("PTDESK_BIND_ADDRESS", None)  # the images: PTDESK_SSH_IMAGE etc. if set, else ptdesk's own
        self.config: Config = load_config(self.env)
        self.ws = Workstation(self.config)
        self.label = f"ptdesk-bench={self.instance}"  # on the raw containers
        self.raw_nodelay = raw_nodelay
        load_paramiko()  # imported before any timing, for the raw login as for the in-process arm
        experiments_network(self.ws.engine, image_tag(self.config, "ssh"))  # made as a launch makes it

    # --- (a) ptdesk ------------------------------------------------------------------------
    def ptdesk_round(self, kind: str, n: int, code: str | None = None) -> float:
        """`code`: another checkout's root (PYTHONPATH) whose CLI runs instead of this one's."""
        name = f"{kind}-{n}" if code is None else f"{kind}-before-{n}"
        env = self.env if code is None else {**self.env, "PYTHONPATH": code}
        started = time.perf_counter()
        proc = subprocess.run([PTDESK, "new", kind, "--name", name, "--json"], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"ptdesk new {kind} failed: {proc.stderr.strip()}")
        subprocess.run([PTDESK, "rm", "--force", name], env=self.env, capture_output=True, timeout=TIMEOUT,
                       check=True)
        return elapsed

    # --- (c) ptdesk's core, in this process ---------------------------------------------------
    def core_round(self, kind: str, n: int) -> float:
        name = f"{kind}-core-{n}"
        started = time.perf_counter()
        self.ws.launch(make_spec(self.ws, kind, name=name))
        elapsed = time.perf_counter() - started
        operations.remove(self.ws, name, force=True)
        return elapsed

    # --- (b) raw docker run ----------------------------------------------------------------
    def _hardening(self, workspace: Path, network: str) -> list[str]:
        limits, cpus = self.config.limits, min(self.config.limits.cpus, float(os.cpu_count() or 1))
        return ["--label", self.label, "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
                "--init", "--pids-limit", str(limits.pids), "--memory", limits.memory,
                "--memory-swap", limits.memory, "--cpus", f"{cpus:g}", "--shm-size", limits.shm_size,
                "--network", network, "-v", f"{workspace}:/workspace"]

    def _workspace(self, name: str) -> tuple[Path, Path]:
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))
        workspace = folder / "workspace"
        workspace.mkdir()
        os.chown(workspace, self.config.uid, self.config.gid)
        return folder, workspace

    def raw_ssh_round(self, n: int, network: str) -> float:
        key_file, owner_public = ssh_owner_key(self.config, "bench")
        name = f"{self.instance}-raw-ssh-{network[:6]}-{n}"
        started = time.perf_counter()
        folder, workspace = self._workspace(name)
        host = keys.generate()
        private_files.write_secret(folder / "host_key", host.private_pem, 0o600)
        (folder / "authorized_keys").write_text(keys.authorized_keys_line(owner_public) + "\n")
        docker("run", "-d", "--name", name, "-p", "127.0.0.1::22", *self._hardening(workspace, network),
               *[arg for cap in SSHD_CAPS for arg in ("--cap-add", cap)],
               "-e", f"PTDESK_UID={self.config.uid}", "-e", f"PTDESK_GID={self.config.gid}",
               "-v", f"{folder / 'host_key'}:/etc/ssh/ssh_host_ed25519_key:ro",
               "-v", f"{folder / 'authorized_keys'}:/etc/ptdesk/authorized_keys/ptdesk:ro",
               image_tag(self.config, "ssh"))
        port = int(docker("port", name, "22/tcp").splitlines()[0].rsplit(":", 1)[1])
        if self.raw_nodelay:
            poll(lambda: try_login("127.0.0.1", port, "ptdesk", key_file, host.public_line, command=None,
                                   timeout=5).ok, "raw sshd")
        else:
            poll(lambda: plain_login(port, key_file, host.public_line), "raw sshd")
        elapsed = time.perf_counter() - started
        docker("rm", "-f", name)
        return elapsed

    def raw_jupyter_round(self, n: int, network: str) -> float:
        name = f"{self.instance}-raw-jupyter-{network[:6]}-{n}"
        uid, gid = self.config.uid, self.config.gid
        started = time.perf_counter()
        folder, workspace = self._workspace(name)
        token = uuid.uuid4().hex + uuid.uuid4().hex
        token_file = folder / "token"
        private_files.write_secret(token_file, token.encode(), 0o400)
        os.chown(token_file, uid, gid)
        docker("run", "-d", "--name", name, "-p", "127.0.0.1::8888", *self._hardening(workspace, network),
               "--user", f"{uid}:{gid}", "-e", "HOME=/home/ptdesk",
               "--tmpfs", f"/home/ptdesk:uid={uid},gid={gid},mode=0700,size=1g",
               "-v", f"{token_file}:/etc/ptdesk/jupyter_token:ro", image_tag(self.config, "jupyter"))
        port = int(docker("port", name, "8888/tcp").splitlines()[0].rsplit(":", 1)[1])
        poll(lambda: api_status("127.0.0.1", port, token)[0] == 200, "raw JupyterLab")
        elapsed = time.perf_counter() - started
        docker("rm", "-f", name)
        return elapsed

    def cli_start(self) -> float:
        """`ptdesk new ssh --help`: the interpreter starting and importing the launch path (the Docker
        SDK, paramiko, cryptography) without launching: the floor of every (a) time."""
        started = time.perf_counter()
        subprocess.run([PTDESK, "new", "ssh", "--help"], env=self.env, capture_output=True, check=True, timeout=60)
        return time.perf_counter() - started

    def cleanup(self) -> None:
        for flt in (f"label={self.label}", f"label=ptdesk.instance={self.instance}"):
            ids = docker("ps", "-aq", "--filter", flt).split()
            if ids:
                docker("rm", "-f", *ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kinds", default="ssh,jupyter")
    parser.add_argument("--before", metavar="DIR", help="also another checkout's CLI (its root, as PYTHONPATH), "
                        "in the same rounds")
    parser.add_argument("--raw-nodelay", action="store_true",
                        help="the raw runs log in over ptdesk's connection (Nagle off) instead of paramiko's own")
    args = parser.parse_args()
    compile_checkouts(Path(__file__).resolve().parent.parent, args.before)  # as an installed ptdesk runs
    with tempfile.TemporaryDirectory(prefix="ptdesk-bench-") as tmp:
        bench = Bench(Path(tmp), args.raw_nodelay)
        raw = {"ssh": bench.raw_ssh_round, "jupyter": bench.raw_jupyter_round}
        arms: dict[str, Callable[[str, int], float]] = {
            "ptdesk": bench.ptdesk_round, "raw": lambda kind, n: raw[kind](n, NETWORK_NAME),
            "bridge": lambda kind, n: raw[kind](n, "bridge"), "core": bench.core_round}
        if args.before:
            arms["before"] = lambda kind, n: bench.ptdesk_round(kind, n, args.before)
        print(f"launch benchmark: {args.rounds} alternating rounds per kind, {os.cpu_count()} CPUs, "
              f"raw runs on {NETWORK_NAME} (raw) and on the default bridge (bridge), logging in "
              + ("over ptdesk's connection (Nagle off)" if args.raw_nodelay else "as paramiko does by itself"))
        worst, worst_bridge = 0.0, 0.0
        try:
            for kind in args.kinds.split(","):
                times: dict[str, list[float]] = {who: [] for who in arms}
                for n in range(args.rounds):
                    # Alternate the order so drift on a shared machine hits every arm alike.
                    order = list(arms) if n % 2 == 0 else list(reversed(arms))
                    for who in order:
                        times[who].append(arms[who](kind, n))
                    print(f"  {kind:8s} round {n + 1}: " + "   ".join(f"{who} {times[who][-1]:5.2f} s" for who in arms))
                median = {who: statistics.median(t) for who, t in times.items()}
                ratio = median["ptdesk"] / median["raw"]
                worst = max(worst, ratio)
                worst_bridge = max(worst_bridge, median["ptdesk"] / median["bridge"])
                print(f"{kind:8s} median: ptdesk CLI {median['ptdesk']:.2f} s, raw docker run {median['raw']:.2f} s"
                      f" -> ratio ptdesk/raw {ratio:.2f}x   (in-process core {median['core']:.2f} s, "
                      f"core/raw {median['core'] / median['raw']:.2f}x)")
                print(f"{kind:8s} median: raw docker run on the default bridge {median['bridge']:.2f} s -> ratio "
                      f"ptdesk/bridge {median['ptdesk'] / median['bridge']:.2f}x, core/bridge "
                      f"{median['core'] / median['bridge']:.2f}x")
                if args.before:
                    print(f"{kind:8s} median: before's CLI {median['before']:.2f} s -> ratio before/raw "
                          f"{median['before'] / median['raw']:.2f}x")
        finally:
            bench.cleanup()
            bench.ws.close()
        floor = statistics.median(bench.cli_start() for _ in range(5))
    print(f"CLI start alone (ptdesk new ssh --help, median of 5): {floor:.2f} s of every (a) time")
    print(f"worst CLI ratio {worst:.2f}x against the raw run on the isolated network, {worst_bridge:.2f}x against "
          f"the default bridge (targets: CLI <= 1.6x, in-process <= 1.25x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
