"""VS Code in the browser: `ptdesk new code` (launch → editor ready) against `ptdesk new jupyter`
(launch → JupyterLab ready), in one run.

Each round launches both with the real CLI as subprocesses (`ptdesk new KIND --json`), alternating
which goes first, and times each until it returns: it returns only once the service is proven
ready — for code, the password logs in, the workbench page loads with the session cookie and the
editor's WebSocket answers its first message; for Jupyter, an authenticated /api/status. Then a
second figure per round: from the CLI's return to the workbench's first request being answered
again with a fresh login (what a person's browser does next). Removal is untimed.

    python bench/code_launch.py [--rounds 5]

Images: PTDESK_CODE_IMAGE / PTDESK_JUPYTER_IMAGE, else the test tags scripts/test-images builds.
Everything it creates carries a unique instance and is removed at the end, even on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ptdesk.core.kinds import code_http

PTDESK = str(Path(sys.executable).parent / "ptdesk")
IMAGES = {"PTDESK_CODE_IMAGE": "ptdesk-test/code:latest", "PTDESK_JUPYTER_IMAGE": "ptdesk-test/jupyter:latest"}
TIMEOUT = 300


class Bench:
    def __init__(self, root: Path) -> None:
        self.instance = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "PTDESK_HOME": str(root / "home"), "PTDESK_INSTANCE": self.instance}
        for key, default in IMAGES.items():
            self.env[key] = os.environ.get(key) or default
        self.env.pop("PTDESK_BIND_ADDRESS", None)

    def ptdesk(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PTDESK, *args], env=self.env, capture_output=True, text=True, timeout=TIMEOUT)

    def launch(self, kind: str, name: str) -> tuple[float, dict]:
        started = time.perf_counter()
        proc = self.ptdesk("new", kind, "--name", name, "--json")
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"ptdesk new {kind} failed: {proc.stderr.strip()}")
        return seconds, json.loads(proc.stdout)

    def remove(self, name: str) -> None:
        self.ptdesk("rm", "--force", name)

    def cleanup(self) -> None:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=ptdesk.instance={self.instance}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def browser_next(access: dict) -> float:
    """A person's next step after the URL: log in and get the workbench page (seconds)."""
    started = time.perf_counter()
    cookie = code_http.login(access["host"], access["port"], access["password"], None)
    if cookie is None or code_http.workbench(access["host"], access["port"], cookie, None).status != 200:
        raise RuntimeError("the workbench did not open after the launch returned")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"code": [], "jupyter": [], "login+workbench": []}
    with tempfile.TemporaryDirectory(prefix="ptdesk-bench-") as root:
        bench = Bench(Path(root))
        try:
            for n in range(args.rounds):
                order = ("code", "jupyter") if n % 2 == 0 else ("jupyter", "code")
                for kind in order:  # alternate: drift on a shared machine hits both alike
                    seconds, experiment = bench.launch(kind, f"{kind}-{n}")
                    times[kind].append(seconds)
                    if kind == "code":
                        times["login+workbench"].append(browser_next(experiment["code"]))
                    bench.remove(f"{kind}-{n}")
                print(f"round {n + 1}: code {times['code'][-1]:.2f} s, jupyter {times['jupyter'][-1]:.2f} s, "
                      f"then login+workbench {times['login+workbench'][-1]:.3f} s", flush=True)
        finally:
            bench.cleanup()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedian launch → ready: code {med['code']:.2f} s, jupyter {med['jupyter']:.2f} s "
          f"(code/jupyter {med['code'] / med['jupyter']:.2f}×); then login+workbench {med['login+workbench']:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
