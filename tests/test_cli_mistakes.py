"""Mistakes people make with `ptdesk run` and `ptdesk report`, said in one sentence before anything is
asked of an engine (none answers here) or made in PTDESK_HOME."""

from __future__ import annotations

from pathlib import Path

from tests.support.helpers import run_cli

NO_ENGINE = "unix:///nonexistent.sock"


def test_run_wait_with_a_sweep_of_several_jobs_is_refused_before_anything_is_made(
        ptdesk_env: dict[str, str], tmp_path: Path) -> None:
    """--wait follows one job; with a sweep it was silently ignored and ptdesk returned at once."""
    env = {**ptdesk_env, "DOCKER_HOST": NO_ENGINE}
    code, _, err = run_cli(["run", "--wait", "--code", str(tmp_path), "--sweep", "lr=1,2", "--", "echo", "{lr}"], env)
    assert code == 2
    assert err.splitlines()[0] == "ptdesk: --wait follows one job, and this sweep makes 2."
    assert not (Path(env["PTDESK_HOME"]) / "jobs").exists()


def test_cancel_or_rerun_of_a_malformed_name_is_a_usage_error(ptdesk_env: dict[str, str]) -> None:
    """It was exit 1, "No job named 'Bad Name!'", after asking the engine."""
    for command in ("cancel", "rerun"):
        code, _, err = run_cli([command, "Bad Name!"], {**ptdesk_env, "DOCKER_HOST": NO_ENGINE})
        assert code == 2
        assert err.splitlines()[0] == "ptdesk: 'Bad Name!' is not a valid experiment name."


def test_report_with_two_formats_is_a_usage_error(ptdesk_env: dict[str, str]) -> None:
    """The last of --csv / --markdown / --json silently won."""
    code, out, err = run_cli(["report", "--csv", "--markdown"], {**ptdesk_env, "DOCKER_HOST": NO_ENGINE})
    assert code == 2 and out == ""
    assert "--csv, --markdown ask for different formats: pick one." in err


def test_report_when_no_workstation_answers_prints_no_empty_tables(ptdesk_env: dict[str, str]) -> None:
    """Empty tables saying "nothing recorded" read as a week nobody used the GPUs."""
    code, out, err = run_cli(["report"], {**ptdesk_env, "DOCKER_HOST": NO_ENGINE})
    assert code == 3 and out == ""
    assert err.startswith("ptdesk: local: Connecting to Docker") and "Traceback" not in err
