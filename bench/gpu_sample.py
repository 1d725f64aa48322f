#!/usr/bin/env python3
"""What one full GPU sample (+ attribution to containers and people) costs, per GPU.

Runs against real NVML when it initialises, else against the NVML scenario fixtures of the tests
(and says so: then the figures are ptdesk's own overhead, not the driver's). Prints ratios against
baselines measured in the same run:
  bare      nvmlDeviceGetCount + nvmlDeviceGetHandleByIndex + utilisation per GPU: the least a
            sampler can do
  smi       one `nvidia-smi --query-gpu` subprocess, when nvidia-smi is installed
Target on a GPU machine: sample + attribution <= 5 ms per GPU.

    python bench/gpu_sample.py [--runs 200] [--gpus 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pynvml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ptdesk.core.gpu.nvml import GpuSampler  # noqa: E402
from ptdesk.core.gpu.procmap import attribute  # noqa: E402

TARGET_MS = 5.0


def timed(fn: Callable[[], object], runs: int) -> float:
    """Median seconds per call (the median shrugs off a stray scheduler hiccup)."""
    fn()  # warm caches and first-call costs
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def bare() -> None:
    for i in range(pynvml.nvmlDeviceGetCount()):
        pynvml.nvmlDeviceGetUtilizationRates(pynvml.nvmlDeviceGetHandleByIndex(i))


def engine_labels_ms(instance: str, runs: int) -> float | None:
    """The one engine request attribution adds when some GPU PID lives in a container."""
    try:
        from ptdesk.core.engine.client import Engine

        engine = Engine.connect(timeout=5)
    except Exception:  # no docker-py or no engine (the GPU check machine): not part of the figure
        return None
    try:
        return timed(lambda: engine.list_managed(instance), runs) * 1000
    finally:
        engine.close()


def real_nvml() -> str | None:
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # no driver: fall back to the fixtures
        return str(exc)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--gpus", type=int, default=8, help="GPUs in the fixture scenario (no-NVML mode)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with ExitStack() as stack:
        why_not = real_nvml()
        if why_not is None:
            mode = "real NVML"
            stack.callback(pynvml.nvmlShutdown)
        else:
            from tests.support import nvml_scenarios

            mode = f"scenario fixtures (no NVML here: {why_not}); figures are ptdesk's overhead, not the driver's"
            stack.enter_context(nvml_scenarios.installed(nvml_scenarios.healthy(gpus=args.gpus)))
        sampler = stack.enter_context(GpuSampler())
        first = sampler.sample()
        if not first.available:
            print(f"GPU sampling unavailable: {first.reason}")
            return 1
        gpus = max(1, len(first.physical))
        processes = sum(len(g.processes) for g in first.physical)
        instance = os.environ.get("PTDESK_INSTANCE", "default")

        results = {
            "bare": timed(bare, args.runs),
            "sample": timed(sampler.sample, args.runs),
            # No engine: attribution reads /proc only (what the CLI does when no PID is in a container).
            "sample+attribute": timed(lambda: attribute(sampler.sample(), None, instance), args.runs),
        }
        if shutil.which("nvidia-smi") and why_not is None:
            query = ["nvidia-smi", "--query-gpu=index,uuid,utilization.gpu,memory.used,memory.total,temperature.gpu,"
                     "power.draw", "--format=csv,noheader,nounits"]
            results["smi"] = timed(lambda: subprocess.run(query, capture_output=True, check=True),
                                   max(3, args.runs // 20))
        driver = first.driver
    labels_ms = engine_labels_ms(instance, max(3, args.runs // 20))

    per_gpu_ms = {k: v / gpus * 1000 for k, v in results.items()}
    report = {
        "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)",
        "mode": mode, "driver": driver, "gpus": gpus, "processes": processes, "runs": args.runs,
        "per_gpu_ms": {k: round(v, 4) for k, v in per_gpu_ms.items()},
        "ratio_vs_bare": round(results["sample+attribute"] / results["bare"], 2),
        "target_ms_per_gpu": TARGET_MS,
        "meets_target": per_gpu_ms["sample+attribute"] <= TARGET_MS,
    }
    if labels_ms is not None:
        report["engine_labels_ms_per_sample"] = round(labels_ms, 3)
    if "smi" in results:
        report["ratio_vs_smi"] = round(results["sample+attribute"] / results["smi"], 3)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"machine: {report['machine']}")
    print(f"mode:    {mode}")
    print(f"GPUs: {gpus}, GPU processes: {processes}, driver {driver}, median of {args.runs} runs")
    for key, ms in per_gpu_ms.items():
        print(f"  {key:<17} {ms:8.3f} ms per GPU")
    if labels_ms is not None:
        print(f"  + engine labels   {labels_ms:8.3f} ms per sample (one request, only if a PID is in a container)")
    print(f"sample+attribute vs bare NVML loop: {report['ratio_vs_bare']}x")
    if "smi" in report:
        print(f"sample+attribute vs nvidia-smi --query-gpu subprocess: {report['ratio_vs_smi']}x")
    verdict = "meets" if report["meets_target"] else "MISSES"
    print(f"target <= {TARGET_MS} ms per GPU: {verdict} ({per_gpu_ms['sample+attribute']:.3f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
