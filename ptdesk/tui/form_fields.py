"""The new-experiment form's fields, and the core's errors said in the form's words."""

from __future__ import annotations

from ptdesk.errors import GpuUnavailable, ImageMissing

FIELDS = ("name", "owner", "gpus", "image", "workspace", "memory", "cpus", "shm_size")
LABELS = {"name": "Name", "owner": "Owner", "gpus": "GPUs", "image": "Image", "workspace": "Workspace",
          "memory": "Memory", "cpus": "CPUs", "shm_size": "Shared memory"}
# The CLI options the core's hints name, as the form calls them.
FORM_WORDS = {"--shm-size": "Shared memory", "--workspace": "Workspace", "--memory": "Memory", "--cpus": "CPUs",
              "--gpus": "GPUs", "--name": "Name", "--owner": "Owner", "--image": "Image", "--pids": "pids"}
# Errors that say which field without a `field`: by their kind.
FIELD_OF_ERROR: tuple[tuple[type[BaseException], str], ...] = ((ImageMissing, "image"), (GpuUnavailable, "gpus"))


def form_words(text: str) -> str:
    """A hint from the core ("Use --cpus 4.") in the form's words ("Use CPUs 4.")."""
    for option, label in FORM_WORDS.items():
        text = text.replace(option, label)
    return text


def field_at_fault(error: BaseException) -> str:
    """The form field an error is about; Name when none is known (where a retry usually starts)."""
    wanted = getattr(error, "field", None)
    if wanted in FIELDS:
        return str(wanted)
    return next((name for kind, name in FIELD_OF_ERROR if isinstance(error, kind)), "name")
