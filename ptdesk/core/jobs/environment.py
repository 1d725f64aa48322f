"""The environment a job ran in, kept beside its record (PTDESK_HOME/jobs/NAME/environment.json) so
that `ptdesk env diff JOB EXPERIMENT` works after its container is gone.

A job --like an experiment: that experiment's live environment read at submit (what the job got);
any other job: the environment recorded in its image, read from its container as it ends.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ptdesk.core.base.private_files import write_secret
from ptdesk.core.environment.recorded import Environment, read_recorded
from ptdesk.core.jobs import record as records

if TYPE_CHECKING:
    from ptdesk.config import Config
    from ptdesk.core.engine.client import Engine

FILE = "environment.json"


def save(config: Config, name: str, env: Environment) -> None:
    """In the probe's own shape, so that reading it back is the probe's parser."""
    document = env.to_json()
    document["torch"] = {"version": env.torch, "cuda": env.cuda, "cudnn": env.cudnn, "nccl": env.nccl}
    write_secret(records.folder(config, name) / FILE, json.dumps(document).encode())


def load(config: Config, name: str) -> Environment | None:
    try:
        return Environment.from_probe(json.loads((records.folder(config, name) / FILE).read_text()))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def keep_from_image(config: Config, engine: Engine, name: str, container_id: str) -> None:
    """The image's recorded environment, unless one was kept at submit (--like's, which is more)."""
    if (records.folder(config, name) / FILE).exists():
        return
    env = read_recorded(engine, container_id)
    if env is not None:
        save(config, name, env)
