"""What a result must record about the software and machine that produced it."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from . import allocator

PACKAGES = ("vidtok-bench", "torch", "torchvision", "numpy", "scipy", "av", "lpips", "diffusers", "hydra-core", "pandas", "safetensors")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The project's git commit when running from a checkout (editable install), else None."""
    src = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


#: environment variables that shape CPU speed (threads, allocator), recorded with every result
RUNTIME_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE", allocator.ENV)


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "vidtok_bench": package_versions()["vidtok-bench"],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "num_threads": torch.get_num_threads(),
        # what ``import vidtok_bench`` defaults (or the user set): both change speed, never values
        "runtime_env": {k: os.environ.get(k) for k in RUNTIME_ENV},
        "git_commit": git_commit(),
        "packages": package_versions(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env
