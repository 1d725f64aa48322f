"""The core is reachable without the TUI: importing it must not pull in textual (harlequin's rule).

Runs in a fresh interpreter: inside pytest, other tests may already have imported textual.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import REPO

_PROBE = r"""
import importlib, json, pkgutil, sys
import ptdesk.core
names = sorted(m.name for m in pkgutil.walk_packages(ptdesk.core.__path__, "ptdesk.core."))
for name in names + {extra}:
    importlib.import_module(name)
print(json.dumps({{"modules": names, "textual": sorted(m for m in sys.modules if m.split(".")[0] == "textual")}}))
"""


def _probe(extra: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(extra=extra)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_core_modules_do_not_import_textual() -> None:
    result = _probe(["ptdesk.config", "ptdesk.errors"])
    # Guard against a vacuous pass: the walk must really have found the core modules.
    assert {"ptdesk.core.engine.client", "ptdesk.core.environment.images",
            "ptdesk.core.workstation"} <= set(result["modules"])
    assert result["textual"] == []


def test_cli_commands_do_not_import_textual() -> None:
    """`ptdesk doctor` and friends stay fast: only the bare `ptdesk` (dashboard) loads textual."""
    result = _probe(["ptdesk.cli"])
    assert result["textual"] == []


_HELP_PROBE = r"""
import json, sys
sys.argv = ["ptdesk", *{args}]
from ptdesk.cli import main
try:
    main()
except SystemExit:
    pass
heavy = ("docker", "paramiko", "textual", "requests", "cryptography", "pynvml")
print(json.dumps({{"heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy),
                  "kinds": sorted(m for m in sys.modules if m.startswith("ptdesk.core.kinds."))}}), file=sys.stderr)
"""


def _imports_of(args: list[str], env: dict[str, str] | None = None) -> dict[str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", _HELP_PROBE.format(args=args)], capture_output=True,
                          text=True, cwd=REPO, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    if "--help" in args:
        assert "Usage:" in proc.stdout  # the help was really printed
    return json.loads(proc.stderr.strip().splitlines()[-1])


def _heavy_imports_of(args: list[str]) -> list[str]:
    """The engine's, SSH's and the dashboard's libraries a command imports (cryptography, which keys
    need, is asked of `new KIND --help` alone)."""
    return [m for m in _imports_of(args)["heavy"] if m.split(".")[0] not in ("cryptography", "pynvml")]


def test_help_imports_no_engine_ssh_or_dashboard_library() -> None:
    """A --help starts at once: it imports neither the Docker SDK, paramiko, textual nor cryptography."""
    for args in (["--help"], ["workstations", "--help"], ["collab", "--help"], ["ls", "--help"]):
        assert _heavy_imports_of(args) == [], args


def test_a_kinds_help_imports_no_kind_module() -> None:
    """`ptdesk new KIND --help` is read from the kinds registry's entries: neither the kind's module
    (keys, engine, HTTP) nor anything heavy it uses is imported to print it."""
    from ptdesk.core.kinds import door_kinds

    assert {"ssh", "jupyter"} <= {entry.name for entry in door_kinds()}
    for name in (entry.name for entry in door_kinds()):  # a job has no `new` subcommand: `ptdesk run` makes it
        imported = _imports_of(["new", name, "--help"])
        assert imported == {"heavy": [], "kinds": ["ptdesk.core.kinds.registry"]}, name


def test_command_summaries_say_what_each_command_says() -> None:
    """`ptdesk --help` lists commands from a table (no command module imported): it must be the
    commands' own words, for every command."""
    from ptdesk.commands import COMMAND_SUMMARIES, COMMAND_TOPICS, load_command

    assert set(COMMAND_SUMMARIES) == set(COMMAND_TOPICS)
    for name, summary in COMMAND_SUMMARIES.items():
        command = load_command(name)
        assert command is not None and summary == command.get_short_help_str(limit=1000), name


@pytest.mark.engine
def test_a_local_listing_imports_no_ssh_key_or_gpu_library(tmp_path: Path) -> None:
    """`ptdesk ls` without a resident, on the local engine: docker-py without its SSH transport
    (paramiko is for ssh:// engines), no key library (nothing is made or parsed) and no NVML."""
    env = {**os.environ, "PTDESK_HOME": str(tmp_path), "PTDESK_INSTANCE": f"hygiene-{tmp_path.name}"}
    heavy = _imports_of(["ls", "--on", "local"], env)["heavy"]
    assert "docker" in heavy  # it really asked the engine
    assert {m.split(".")[0] for m in heavy} <= {"docker", "requests"}, heavy


def _ptdesk_modules_after(args: list[str], home: Path) -> tuple[str, set[str]]:
    """Run `ptdesk ARGS` in a fresh interpreter with its own home: what it printed, and every ptdesk
    module it imported."""
    probe = (f"import json, sys; sys.argv = ['ptdesk', *{args!r}]\n"
             "from ptdesk.cli import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ptdesk.'))), file=sys.stderr)")
    env = {**os.environ, "PTDESK_HOME": str(home), "PTDESK_INSTANCE": f"hygiene-{home.name}"}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, set(json.loads(proc.stderr.strip().splitlines()[-1]))


@pytest.mark.engine
def test_an_empty_listing_imports_no_environment_gpu_or_collaborator_module(tmp_path: Path) -> None:
    """`ptdesk ls` with no experiment: no environment column to work out and no GPU, collaborator or
    audit snapshot to build, so their modules (dataclasses cost start-up time) are not imported."""
    out, imported = _ptdesk_modules_after(["ls", "--on", "local"], tmp_path)
    assert "No running experiments" in out  # it really listed (and reconciled) on the engine
    assert "ptdesk.core.experiments.reconcile" in imported
    unneeded = {"ptdesk.core.environment.drift", "ptdesk.core.environment.images", "ptdesk.core.base.gpu_models",
                "ptdesk.core.base.people_models", "ptdesk.core.jobs.record", "ptdesk.core.sharing.reservations"}
    assert imported & unneeded == set()


def test_the_local_gpus_import_no_remote_sampler_module(tmp_path: Path) -> None:
    """`ptdesk gpus` on the local workstation asks NVML here: the modules that read a remote box's
    sampler over its engine connection (and their wire format) are not imported for it, nor for a
    local launch, which samples the same way."""
    out, imported = _ptdesk_modules_after(["gpus", "--json"], tmp_path)
    assert json.loads(out)["workstation"] == "local"  # it really sampled
    assert "ptdesk.core.gpu.nvml" in imported
    assert imported & {"ptdesk.core.gpu.remote", "ptdesk.core.gpu.wire"} == set()


def test_a_command_that_uses_the_engine_does_not_import_invoke() -> None:
    """paramiko (imported by docker-py) imports invoke only for ~/.ssh/config's `Match exec`, which
    ptdesk never reads; invoke's import is a third of a command's start-up, so the CLI skips it."""
    probe = ("import sys; import ptdesk.cli, docker, paramiko; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'invoke' and sys.modules[m] is not None))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_dashboard_imports_what_its_first_frame_needs_and_no_screen_a_key_opens() -> None:
    """The screens a key opens (the form, collaborators, reservations, the idle cull, usage) and the
    batch-job code are imported when used: before the first frame they would only delay it."""
    later = ("ptdesk.tui.screens.new_experiment", "ptdesk.tui.screens.collaborators", "ptdesk.tui.screens.reservations",
             "ptdesk.tui.screens.idle_cull", "ptdesk.tui.screens.usage", "ptdesk.core.job_desk", "ptdesk.core.jobs")
    probe = f"import sys, ptdesk.tui.app; print(sorted(m for m in sys.modules if m.startswith({later!r})))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


_FIRST_FRAME = r"""
import gc, json, sys
gc.disable()  # as `ptdesk` does for its dashboard (ptdesk.commands.dashboard)
from ptdesk.config import load_config
from ptdesk.core.workstation import Workstation
from ptdesk.tui.app import PtdeskApp
from ptdesk.tui.screens import main
heavy = ("docker", "pynvml", "paramiko", "requests", "ptdesk.core.engine.client", "ptdesk.core.sharing",
         "ptdesk.core.notify", "ptdesk.core.store", "ptdesk.core.vscode", "ptdesk.tui.screens.details",
         "ptdesk.tui.screens.confirm", "ptdesk.tui.screens.prompt")
seen = {}

def feeds_would_start(screen):
    seen["heavy"] = sorted(m for m in sys.modules if m.startswith(heavy) and sys.modules[m] is not None)
    seen["collector_on"], seen["frozen"] = gc.isenabled(), gc.get_freeze_count()
    screen.app.exit()

main.MainScreen._start_feeds = feeds_would_start  # the first frame is up: stop before the feeds' work
PtdeskApp(Workstation(load_config())).run(headless=True, size=(120, 40))
print(json.dumps(seen))
"""


def test_the_dashboard_draws_its_first_frame_before_the_engine_nvml_or_the_notices_are_imported(
        tmp_path: Path) -> None:
    """The Docker SDK, the engine client, NVML, the GPU sharing rules, the store, the notices and the
    screens a key opens come after the first frame (the feeds import them in their threads); and the
    collector, off while the dashboard starts, is on again once that frame is up, with what the
    start-up made frozen (a dashboard left with it off would never free a reference cycle)."""
    env = {**os.environ, "PTDESK_HOME": str(tmp_path), "PTDESK_INSTANCE": f"hygiene-{tmp_path.name}"}
    proc = subprocess.run([sys.executable, "-c", _FIRST_FRAME], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["heavy"] == []
    assert seen["collector_on"] is True and seen["frozen"] > 0
