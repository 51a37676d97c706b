"""What a result must record about the software and machine that produced it."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import allocator
from .hashing import flatten

if TYPE_CHECKING:  # torch loads when an environment is recorded: merge and report code compare records without it
    import torch

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


#: entries of :func:`environment` that say which code computed a result (not where it ran: hosts, kernels and thread
#: counts may differ between the processes of one run without changing what it computes)
CODE_KEYS = ("vidtok_bench", "python", "torch", "cuda", "git_commit", "packages")


def code_environment(env: dict[str, Any]) -> dict[str, Any]:
    return {k: env.get(k) for k in CODE_KEYS}


def code_differences(envs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{'packages.torch': {LABEL: '2.14.1', OTHER: '2.13.0'}}`` for each code entry the labelled environments (the
    processes or parts of one run) hold differently; empty when they all ran the same code."""
    flats = {label: flatten(code_environment(env)) for label, env in envs.items()}
    keys = dict.fromkeys(k for f in flats.values() for k in f)
    return {k: {label: f.get(k) for label, f in flats.items()} for k in keys
            if len({repr(f.get(k)) for f in flats.values()}) > 1}


def environment(device: torch.device) -> dict[str, Any]:
    import torch

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
