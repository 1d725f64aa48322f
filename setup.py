"""Only what pyproject.toml cannot say: ship images/ (one Dockerfile folder per experiment kind) inside
the package as ptdesk._images, every folder found, so a new kind's images/<kind>/ needs no line here.

Everything else (metadata, dependencies) lives in pyproject.toml.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).parent
IMAGES = sorted(p.name for p in (HERE / "images").iterdir() if (p / "Dockerfile").is_file())

setup(
    packages=[
        *find_namespace_packages(where=str(HERE), include=["ptdesk", "ptdesk.*"], exclude=["*.__pycache__"]),
        "ptdesk._images",
        *(f"ptdesk._images.{name}" for name in IMAGES),
    ],
    package_dir={"ptdesk._images": "images"},
    # images/env-probe: the environment probe every image build adds to its context.
    package_data={"ptdesk.tui": ["*.tcss"], "ptdesk._images": ["env-probe"],
                  **{f"ptdesk._images.{name}": ["*", "*/*"] for name in IMAGES}},
)
