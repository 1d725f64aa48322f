"""The test suite beside a team's real images and experiments (issue 20, finding 9).

On a workstation in use, ptdesk/ssh:latest, ptdesk/jupyter:latest, ptdesk/code:latest and ptdesk/gpu-sampler:latest are
the team's images and experiments run from them. The suite's own build path (scripts/test-images) and
run path (a launch under the test environment, then the per-instance cleanup) must leave them, and a
team experiment, exactly as they were. The proof runs on a private engine, so the real team tags of
this machine's engine are never at risk even when the code under test is wrong: the private engine
holds stand-in "team" images of another build under ptdesk's real tags, and a running team container.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest

from ptdesk.core.base.models import LABEL_INSTANCE, LABEL_MANAGED
from ptdesk.core.engine.client import Engine
from ptdesk.core.engine.network import ICC, LABEL_NETWORK, NETWORK_NAME
from tests.support.helpers import (
    BASE_IMAGE,
    CODE_IMAGE,
    JUPYTER_IMAGE,
    REPO,
    SAMPLER_IMAGE,
    SSH_IMAGE,
    TEST_IMAGE_ENV,
    remove_instance_containers,
    require_image,
    run_cli,
)
from tests.support.lifecycle_support import private_engine, private_engine_available

TEAM_TAGS = ("ptdesk/ssh:latest", "ptdesk/jupyter:latest", "ptdesk/code:latest", "ptdesk/gpu-sampler:latest")


def _docker(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(["docker", *args], env=env, input=stdin, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"docker {' '.join(args)} failed: {proc.stderr.strip()}"
    return proc.stdout.strip()


def _team_state(env: dict[str, str], container: str) -> dict[str, str]:
    """Each team tag's image id, and the team container's image id and status."""
    state = {tag: _docker(env, "image", "inspect", "--format", "{{.Id}}", tag) for tag in TEAM_TAGS}
    state["container"] = _docker(env, "inspect", "--format", "{{.Image}} {{.State.Status}}", container)
    return state


@pytest.mark.skipif(private_engine_available() is not None, reason=str(private_engine_available()))
def test_the_suites_build_and_run_path_leave_the_teams_images_and_experiments_alone(
        engine: Engine, tmp_path: Path) -> None:
    for image in (BASE_IMAGE, SSH_IMAGE, JUPYTER_IMAGE, CODE_IMAGE, SAMPLER_IMAGE):
        require_image(engine, image)
    # The images under test come along (built by scripts/test-images here), so the build path finds
    # them up to date, exactly as on a warm workstation.
    with private_engine((BASE_IMAGE, SSH_IMAGE, JUPYTER_IMAGE, CODE_IMAGE, SAMPLER_IMAGE)) as private:
        env = private.env
        build = uuid.uuid4().hex
        for tag in TEAM_TAGS:  # the team's images: another build under ptdesk's own tags
            _docker(env, "build", "-q", "-t", tag, "-", stdin=f"FROM {BASE_IMAGE}\nLABEL team.build={build}\n")
        team = _docker(env, "run", "-d", "--name", f"team-{build[:8]}", "--label", f"{LABEL_MANAGED}=1",
                       "--label", f"{LABEL_INSTANCE}=default", "ptdesk/ssh:latest", "sleep", "infinity")
        before = _team_state(env, team)

        script_env = {**env, "PTDESK_TEST_VENV": str(Path(sys.executable).parent.parent)}
        built = subprocess.run([str(REPO / "scripts" / "test-images")], env=script_env, capture_output=True,
                               text=True, timeout=600)
        assert built.returncode == 0, built.stderr
        assert _team_state(env, team) == before

        # The run path: a test's launch and its cleanup touch only what that test's instance made.
        # Its network made here with an explicit subnet: a busy host may have no default pool left.
        _docker(env, "network", "create", "--subnet", f"10.215.{uuid.uuid4().int % 250}.0/24",
                "-o", f"{ICC}=false", "--label", f"{LABEL_NETWORK}=experiments", NETWORK_NAME)
        instance = f"t-{uuid.uuid4().hex[:10]}"
        desk_env = {**env, **TEST_IMAGE_ENV, "PTDESK_HOME": str(tmp_path / "home"), "PTDESK_INSTANCE": instance}
        code, _, err = run_cli(["new", "ssh", "--name", "beside-team", "--cpus", "1"], desk_env, subprocess_=True)
        assert code == 0, err
        other = Engine(docker.DockerClient(base_url=private.host))
        try:
            removed = remove_instance_containers(other, instance)
        finally:
            other.close()
        assert len(removed) == 1 and team not in removed
        assert _team_state(env, team) == before
        labels = _docker(env, "image", "inspect", "--format", "{{index .Config.Labels \"team.build\"}}", *TEAM_TAGS)
        assert labels.split() == [build] * len(TEAM_TAGS)
