"""Every experiment kind goes through the kind-neutral code paths by its own methods, never by a guess.

A probe kind, registered for the test only, runs in a real container on the real engine: listing,
JSON, the details rows, cull and adoption must each ask it (a path that assumed "not Jupyter, so
SSH" would call the wrong code, or none, and fail here). The real kinds are checked for what the
registry promises: an image folder, a `new` subcommand, an image setting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from ptdesk.config import Config, load_config
from ptdesk.core import kinds
from ptdesk.core.access.seal import LABEL_SEAL, seal, secret_digest
from ptdesk.core.base.models import (
    LABEL_GPUS,
    LABEL_INSTANCE,
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_NAME,
    LABEL_OWNER,
    Access,
    LaunchSpec,
)
from ptdesk.core.base.names import current_user
from ptdesk.core.environment.images import expand_targets, image_tag, images_root
from ptdesk.core.kinds.base import Kind, Plan, Recovered
from ptdesk.core.store.state import ExperimentRecord
from ptdesk.core.workstation import Workstation
from ptdesk.errors import ConfigError
from tests.support.helpers import REPO, run_cli


class ProbeKind(Kind):
    """A kind no code path knows by name: it answers, and notes who asked."""

    name = "probe"
    title = "Probe"
    summary = "A kind that only exists in this test."
    container_port = "7000/tcp"
    sealed_paths = ()

    def __init__(self) -> None:
        self.calls: list[str] = []

    def plan(self, config: Config, spec: LaunchSpec) -> Plan:
        self.calls.append("plan")
        return Plan(container_port=self.container_port)

    def wait_ready(self, config: Config, record: ExperimentRecord, host: str, port: int, timeout: float,
                   is_alive: Callable[[], bool]) -> None:
        self.calls.append("wait_ready")

    def access(self, config: Config, record: ExperimentRecord, host: str) -> Access | None:
        self.calls.append("access")
        return Access(connect=f"probe://{record.name}", rows=(("Probe", record.name),),
                      fields={"address": f"probe://{record.name}"})

    def idle(self, ws: Workstation, record: ExperimentRecord, container_id: str,
             now: float) -> tuple[float | None, str]:
        self.calls.append("idle")
        return 42.0, "the probe says so"

    def read_back(self, ws: Workstation, container_id: str, labels: Mapping[str, str]) -> Recovered:
        self.calls.append("read_back")
        return Recovered(files=(("probe-secret", "s3cret", 0o600),))

    def after_start(self, config: Config, record: ExperimentRecord) -> None:
        self.calls.append("after_start")


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProbeKind]:
    kind = ProbeKind()
    monkeypatch.setitem(kinds.REGISTRY, kind.name, kind)
    yield kind


def test_a_kind_that_leaves_out_a_method_cannot_exist() -> None:
    class Half(Kind):
        name, title, summary, container_port = "half", "Half", "no idle, no read_back", "1/tcp"

        def plan(self, config, spec):  # type: ignore[no-untyped-def]
            raise AssertionError

    with pytest.raises(TypeError, match="abstract"):
        Half()  # type: ignore[abstract]


def test_adoption_listing_json_details_and_cull_ask_the_kind(probe: ProbeKind, ws: Workstation, sleeper) -> None:
    labels = {LABEL_MANAGED: "1", LABEL_INSTANCE: ws.config.instance, LABEL_KIND: "probe",
              LABEL_OWNER: current_user(), LABEL_NAME: "probe-1", LABEL_GPUS: ""}
    sealed = seal(ws.config, labels, secret_digest([]))  # as a launch by this home would seal it
    sleeper("probe-1", owner=current_user(), kind="probe", labels={LABEL_SEAL: sealed})

    report = ws.reconcile()  # the store never heard of it: adopted through the kind's read_back
    assert report.adopted == ("probe-1",)
    assert probe.calls[:2] == ["read_back", "after_start"]
    secret = ws.config.home / "experiments" / "probe-1" / "probe-secret"
    assert secret.read_text() == "s3cret" and secret.stat().st_mode & 0o777 == 0o600

    [listed] = ws.list_experiments()
    assert (listed.kind, listed.connect) == ("probe", "probe://probe-1")
    assert listed.access is not None and listed.access.rows == (("Probe", "probe-1"),)  # the details rows
    assert listed.to_json()["probe"] == {"address": "probe://probe-1"}

    [state] = ws.idle_states()
    assert (state.name, state.idle_seconds, state.detail) == ("probe-1", 42.0, "the probe says so")
    assert "idle" in probe.calls


def test_a_label_naming_no_registered_kind_is_listed_but_never_adopted(ws: Workstation, sleeper) -> None:
    sleeper("mystery", owner=current_user(), kind="no-such-kind")
    report = ws.reconcile()
    assert report.adopted == () and report.orphans == ("mystery",)
    [listed] = ws.list_experiments()
    assert listed.kind == "unknown" and listed.orphan and listed.access is None


def test_the_job_kind_has_no_door_no_image_of_its_own_and_no_new_subcommand(tmp_path: Path) -> None:
    """A job runs the command it is given in the environment people work in (the SSH kind's image,
    or job_image); `ptdesk run` makes it, not `ptdesk new`."""
    job = kinds.get_kind("job")
    assert entry_agrees("job")
    assert not job.has_door and job.container_port is None and "job" not in kinds.kind_names()
    assert run_cli(["new", "job", "--help"])[0] != 0
    assert job.image(load_config({"PTDESK_HOME": str(tmp_path)})) == "ptdesk/ssh:latest"
    config = load_config({"PTDESK_HOME": str(tmp_path), "PTDESK_SSH_IMAGE": "team/ssh:2"})
    assert job.image(config) == "team/ssh:2"
    assert job.image(load_config({"PTDESK_HOME": str(tmp_path), "PTDESK_JOB_IMAGE": "team/train:1"})) == "team/train:1"


def entry_agrees(name: str) -> bool:
    """The entry `--help`, the form and `images build` read (without importing the kind) says what
    the kind says."""
    kind, entry = kinds.get_kind(name), kinds.REGISTRY.entry(name)
    fields = ("name", "title", "summary", "accepts_pubkeys", "grants_logins", "has_door", "own_image")
    return entry is not None and all(getattr(entry, f) == getattr(kind, f) for f in fields)


@pytest.mark.parametrize("name", kinds.kind_names())
def test_every_registered_kind_has_its_image_folder_command_and_setting(name: str, tmp_path: Path) -> None:
    kind = kinds.get_kind(name)
    # The entry `--help` and the form read (without importing the kind) says what the kind says.
    assert entry_agrees(name)
    assert (images_root() / name / "Dockerfile").is_file()
    assert name in expand_targets("all") and expand_targets(name) == (name,)
    code, out, _ = run_cli(["new", name, "--help"])
    assert code == 0 and kind.summary.split(":")[0] in out
    assert ("--pubkey" in out) == kind.accepts_pubkeys
    config = load_config({"PTDESK_HOME": str(tmp_path), f"PTDESK_{name.upper()}_IMAGE": f"team/{name}:v3"})
    assert image_tag(config, name) == kind.image(config) == f"team/{name}:v3"
    assert image_tag(load_config({"PTDESK_HOME": str(tmp_path)}), name) == f"ptdesk/{name}:latest"


def test_an_image_setting_for_a_kind_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('sshh_image = "typo/ssh:1"\n')
    with pytest.raises(ConfigError, match="sshh_image"):
        Workstation(load_config({"PTDESK_HOME": str(tmp_path)}))
    code, _, err = run_cli(["ls"], {"PTDESK_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert code != 0 and "sshh_image" in err and "Traceback" not in err


def test_the_readme_names_what_a_new_kind_touches() -> None:
    """The contributor section must match the house: one module in the kinds package, the registry
    line in its __init__, images/<kind>/, tests — and every place it names exists as named."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Adding an experiment kind"):].split("\n## ", 1)[0]
    assert "`ptdesk/core/kinds/<kind>.py`" in section and "`ptdesk/core/kinds/__init__.py`" in section
    assert "`REGISTRY`" in section and "`images/<kind>/`" in section and "`tests/core/test_kinds.py`" in section
    assert hasattr(kinds, "REGISTRY") and (REPO / "ptdesk" / "core" / "kinds" / "__init__.py").is_file()
    # Every abstract method the section tells a newcomer to write is one the interface really has.
    for method in Kind.__abstractmethods__:
        assert f"`{method}`" in section, method


def test_a_missing_image_is_built_by_the_kind_that_owns_it_never_by_job(tmp_path: Path) -> None:
    """A job runs the SSH kind's image: its missing image said `ptdesk images build job`, which is refused."""
    config = load_config({"PTDESK_HOME": str(tmp_path), "PTDESK_SSH_IMAGE": "team/ssh:1",
                          "PTDESK_JUPYTER_IMAGE": "team/jupyter:1"})
    assert kinds.REGISTRY["job"].image(config) == "team/ssh:1"
    assert kinds.build_target(config, "team/ssh:1") == "ssh"
    assert kinds.build_target(config, "team/jupyter:1") == "jupyter"
    assert kinds.build_target(config, "someone/else:2") is None
