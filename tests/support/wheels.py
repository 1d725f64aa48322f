"""Tiny wheels made by the tests themselves (no network, no build backend) that a real pip installs."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path

_WHEEL = b"Wheel-Version: 1.0\nGenerator: ptdesk-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"

# A stand-in for a CUDA 12.8 PyTorch build (the test base has no PyTorch): it answers what ptdesk's
# probe asks a real one (torch.__version__, torch.version.cuda, cuDNN and NCCL versions).
FAKE_TORCH = {
    "torch/__init__.py": "__version__ = '2.9.0+cu128'\nfrom torch import backends, cuda, version  # noqa\n",
    "torch/version.py": "cuda = '12.8'\n",
    "torch/backends/__init__.py": "from torch.backends import cudnn  # noqa\n",
    "torch/backends/cudnn.py": "def version():\n    return 91002\n",
    "torch/cuda/__init__.py": "from torch.cuda import nccl  # noqa\n",
    "torch/cuda/nccl.py": "def version():\n    return (2, 27, 3)\n",
}


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(folder: Path, name: str = "ptdesk-demo", version: str = "1.0",
               modules: Mapping[str, str] | None = None) -> Path:
    """A pure-Python wheel `name==version` (one module unless `modules` names the files); its path."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {path: text.encode() for path, text in (modules or {f"{module}/__init__.py": f"V = {version!r}\n"}).items()}
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{dist_info}/WHEEL"] = _WHEEL
    record = "\n".join([*(_record_line(n, d) for n, d in files.items()), f"{dist_info}/RECORD,,"]) + "\n"
    files[f"{dist_info}/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
    return path
