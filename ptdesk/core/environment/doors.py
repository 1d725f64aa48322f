"""The Workstation's doors to images and environments: builds, drift, archives, the team's pin.

A mixin of the Workstation (ptdesk.core.workstation): each door imports its operation on first
use and hands it the Workstation as the Site it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptdesk.core.environment import baseline
    from ptdesk.core.environment.archive import ArchiveReport
    from ptdesk.core.environment.drift import EnvironmentDiff, ExperimentEnvironment
    from ptdesk.core.environment.images import BuildResult, ImageStatus
    from ptdesk.core.environment.recorded import Environment
    from ptdesk.core.site import Site

Progress = Callable[[str], None]


class EnvironmentDoors:
    """ptdesk's images and what the experiments really run."""

    # --- images -------------------------------------------------------------------------------
    def image_statuses(self: Site, kinds: Iterable[str] | None = None) -> list[ImageStatus]:
        from ptdesk.core.environment import images
        return images.statuses(self, kinds)

    def build_images(self: Site, kinds: Iterable[str], base: str | None = None, ca_bundle: Path | None = None,
                     force: bool = False, on_line: Progress | None = None,
                     on_start: Callable[[str, str], None] | None = None) -> list[BuildResult]:
        from ptdesk.core.environment import images
        return images.build(self, kinds, base=base, ca_bundle=ca_bundle, force=force, on_line=on_line,
                            on_start=on_start)

    # --- environments: what experiments really run, drift, moving and pinning images ----------
    # (ptdesk.core.environment.drift, image_env, image_archive, baseline)
    def environment(self: Site, name: str) -> ExperimentEnvironment:
        """The recorded environment of `name`, its live one while it runs, and what changed since launch."""
        from ptdesk.core.environment import drift
        return drift.environment(self, name)

    def environment_diff(self: Site, a: str, b: str,
                         known: Mapping[str, tuple[str, Environment, str | None]] | None = None) -> EnvironmentDiff:
        """Package by package between two experiments, or an experiment and `image:KIND` (`known`:
        sides read elsewhere, by name: an ended job's kept environment)."""
        from ptdesk.core.environment import drift
        return drift.diff(self, a, b, known)

    def save_images(self: Site, kinds: Iterable[str], path: Path) -> ArchiveReport:
        from ptdesk.core.environment import archive
        return archive.save(self.engine, self.config, kinds, path)

    def load_images(self: Site, path: Path, unpinned: bool = False) -> ArchiveReport:
        """Load a saved file; unless `unpinned`, only images the team's baseline pins (or kinds it leaves open)."""
        from ptdesk.core.environment import archive, baseline
        pinned = {} if unpinned else {kind: pin.image_id for kind, pin in baseline.read(self.config).items()}
        return archive.load(self.engine, path, pinned)

    def verify_images(self: Site, path: Path) -> ArchiveReport:
        """Check a saved file without loading it."""
        from ptdesk.core.environment import archive
        from ptdesk.core.environment.archive import ArchiveReport
        started = time.monotonic()
        images_in = archive.verify(path)
        return ArchiveReport(path, images_in, path.stat().st_size, time.monotonic() - started)

    def pin_images(self: Site, kinds: Iterable[str]) -> list[baseline.Pinned]:
        from ptdesk.core.environment import baseline
        from ptdesk.core.store.state import actor
        return baseline.pin_current(self.engine, self.config, kinds, actor())

    def baseline(self: Site) -> dict[str, baseline.Pinned]:
        from ptdesk.core.environment import baseline
        return baseline.read(self.config)

