"""The GPU sampler's image (images/sampler): not an experiment kind, built by `ptdesk images build`.

Its program is ptdesk's own NVML sampler and PID attribution, so the image carries exactly those
modules (and their one pure-Python dependency, pynvml) copied from this ptdesk at
build time: the sampler on a workstation always speaks the wire format of the ptdesk that built it.
"""

from __future__ import annotations

from pathlib import Path

import ptdesk
from ptdesk.config import Config

SAMPLER_TARGET = "sampler"
SAMPLER_IMAGE = "ptdesk/gpu-sampler:latest"
# What `python3 -m ptdesk.core.gpu.sampler_main` imports, and nothing more (no Docker SDK, no SQLite).
MODULES = ("__init__.py", "errors.py", "config.py", "config_workstations.py", "config_cull.py", "core/__init__.py",
           "core/base/__init__.py", "core/base/models.py", "core/base/gpu_models.py", "core/base/text.py",
           "core/gpu/__init__.py", "core/gpu/nvml.py", "core/gpu/procmap.py", "core/gpu/wire.py",
           "core/gpu/sampler_main.py")


def sampler_tag(config: Config) -> str:
    """The tag the sampler is built as and run from: `sampler_image` (PTDESK_SAMPLER_IMAGE), else
    ptdesk's default; a test run builds its own so it never replaces the team's."""
    return config.images.get(SAMPLER_TARGET, SAMPLER_IMAGE)


def program_files() -> dict[str, bytes]:
    """Context files under app/: the sampler's Python modules, keyed by their path in the context."""
    import pynvml  # imported here: a Workstation reads SAMPLER_TARGET and builds no image

    package = Path(ptdesk.__file__).resolve().parent
    files = {f"app/ptdesk/{name}": (package / name).read_bytes() for name in MODULES}
    files["app/pynvml.py"] = Path(pynvml.__file__).read_bytes()
    return files
