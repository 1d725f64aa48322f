"""The job kind: a command run once, detached, on code frozen at submit (`ptdesk run`); no door.

A job publishes no port and holds no secret: nobody logs in to it. Its container runs the person's
command as the person's uid under a small shell wrapper (the image's entrypoint is not run: a
service image's would start its service), in /code, the snapshot placed read-only (owned by root)
before start. Outputs go to /workspace/outputs/NAME ($PTDESK_OUTPUT). The record, logs and ending
are ptdesk.core.jobs'; this module is only what the Kind interface asks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ptdesk.config import Config
from ptdesk.core.base.models import Access, LaunchSpec
from ptdesk.core.kinds.base import Kind, Plan, Recovered, default_image
from ptdesk.core.store.state import ExperimentRecord

if TYPE_CHECKING:
    from ptdesk.core.site import Site

CODE = "/code"
OUTPUTS = "/workspace/outputs"
# HOME from the account's passwd entry (the uid's own home in ptdesk's images, where `pip install
# --user` puts packages: an experiment's live installs are seen by a job --like it), else /tmp.
# With a time limit ($PTDESK_TIME_LIMIT seconds, $PTDESK_GRACE between signals): SIGINT at the
# limit, SIGTERM one grace later, SIGKILL after another — enforced inside the container, so a limit
# holds with nobody's ptdesk open. The outer timeout's KILL ends the inner one; the command's
# container init then exits and the kernel ends every process left in its PID namespace.
WRAPPER = """\
HOME=$(getent passwd "$(id -u)" 2>/dev/null | cut -d: -f6); [ -d "$HOME" ] && [ -w "$HOME" ] || HOME=/tmp
export HOME
mkdir -p "$PTDESK_OUTPUT" || { echo "ptdesk: cannot make the output folder $PTDESK_OUTPUT" >&2; exit 125; }
cd /code 2>/dev/null || cd /workspace
if [ -n "$PTDESK_TIME_LIMIT" ]; then
  exec timeout -s TERM -k "$PTDESK_GRACE" "$((PTDESK_TIME_LIMIT + PTDESK_GRACE))" \\
       timeout -s INT "$PTDESK_TIME_LIMIT" "$@"
fi
exec "$@"
"""


class JobKind(Kind):
    name = "job"
    title = "Job"
    summary = "A batch job: one command, detached, on code frozen at submit (ptdesk run)."
    container_port = None
    sealed_paths = ()
    has_door = False
    own_image = False
    runs_image_of = "ssh"

    def image(self, config: Config) -> str:
        """`job_image` if set, else the SSH kind's image: the environment people work in."""
        return config.images.get(self.name) or config.images.get("ssh") or default_image("ssh")

    def plan(self, config: Config, spec: LaunchSpec) -> Plan:
        environment = {"PTDESK_JOB": spec.name, "PTDESK_OUTPUT": f"{OUTPUTS}/{spec.name}", **dict(spec.environment)}
        return Plan(container_port=None, user=f"{config.uid}:{config.gid}", environment=environment,
                    entrypoint=("/bin/sh", "-c", WRAPPER, "ptdesk-job"), command=spec.command,
                    working_dir="/", archives=(("/", spec.snapshot),) if spec.snapshot else ())

    def wait_ready(self, config: Config, record: ExperimentRecord, host: str, port: int,
                   timeout: float, is_alive: Callable[[], bool]) -> None:
        """Nothing to wait for: a job is running once its container started."""

    def access(self, config: Config, record: ExperimentRecord, host: str) -> Access | None:
        return None  # no door

    def idle(self, site: Site, record: ExperimentRecord, container_id: str,
             now: float) -> tuple[float | None, str]:
        return None, "a job is never culled: it ends by itself or at its time limit"

    def read_back(self, site: Site, container_id: str, labels: Mapping[str, str]) -> Recovered:
        return Recovered()  # no secrets went in

    def after_start(self, config: Config, record: ExperimentRecord) -> None:
        """No client files to keep in step."""


JOB = JobKind()
