"""Is this host's NVIDIA driver new enough for an image's CUDA? One sentence when it is not.

The table is NVIDIA's "CUDA Toolkit and Corresponding Driver Versions" (CUDA Toolkit release notes,
Linux x86_64, the GA release of each minor): the driver a toolkit's runtime needs for everything
to work. Since CUDA 11, *minor version compatibility* lets a newer 11.x/12.x/13.x runtime start on
an older driver of the same major (from 450.80.02, 525.60.13, 580.65.06), with features missing
(no PTX JIT of newer code: kernels not prebuilt for the GPU fail). So: below the major's floor the
image cannot use the GPU at all; between the floor and the toolkit's driver it may fail on some
kernels. Both are worth one sentence before a person finds out from a failed kernel launch.
"""

from __future__ import annotations

import re

# CUDA major.minor -> minimum Linux x86_64 driver (toolkit driver version, GA of that minor).
TOOLKIT_DRIVER: dict[tuple[int, int], str] = {
    (11, 0): "450.36.06", (11, 1): "455.23", (11, 2): "460.27.03", (11, 3): "465.19.01",
    (11, 4): "470.42.01", (11, 5): "495.29.05", (11, 6): "510.39.01", (11, 7): "515.43.04",
    (11, 8): "520.61.05",
    (12, 0): "525.60.13", (12, 1): "530.30.02", (12, 2): "535.54.03", (12, 3): "545.23.06",
    (12, 4): "550.54.14", (12, 5): "555.42.02", (12, 6): "560.28.03", (12, 8): "570.26",
    (12, 9): "575.51.03",
    (13, 0): "580.65.06",
}
# CUDA major -> the oldest driver its minor version compatibility allows.
MINOR_COMPAT_FLOOR: dict[int, str] = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


def _numbers(version: str) -> tuple[int, ...] | None:
    match = re.match(r"^\s*(\d+(?:\.\d+)*)", version or "")
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def required_driver(cuda: str) -> str | None:
    """The driver CUDA `cuda` ("12.8", "12.8.1") needs, or None when unknown (or "none")."""
    numbers = _numbers(cuda)
    if not numbers or len(numbers) < 2:
        return None
    major, minor = numbers[0], numbers[1]
    if (major, minor) in TOOLKIT_DRIVER:
        return TOOLKIT_DRIVER[(major, minor)]
    # A minor newer than the table knows: at least what the newest known minor of that major needs.
    known = sorted(m for (ma, m) in TOOLKIT_DRIVER if ma == major and m < minor)
    return TOOLKIT_DRIVER[(major, known[-1])] if known else None


def driver_warning(driver: str | None, cuda: str | None, image: str) -> str | None:
    """One sentence (with what to do) when `driver` is older than `image`'s CUDA needs; else None."""
    if not driver or not cuda or cuda == "none":
        return None
    needed, have, toolkit = required_driver(cuda), _numbers(driver), _numbers(cuda)
    if needed is None or have is None or toolkit is None:
        return None
    if have >= (_numbers(needed) or ()):
        return None
    floor = MINOR_COMPAT_FLOOR.get(toolkit[0])
    if floor and have >= (_numbers(floor) or ()):
        return (f"The NVIDIA driver {driver} is older than the {needed} that CUDA {cuda} in {image} needs: "
                f"it starts, but kernels not prebuilt for this GPU will fail; update the driver, or use an "
                f"image built for an older CUDA.")
    return (f"The NVIDIA driver {driver} is too old for CUDA {cuda} in {image} (it needs {needed} or newer): "
            f"GPU code there will fail; update the driver, or use an image built for an older CUDA.")
