"""Safe loading of untrusted model checkpoints.

``.ckpt``/``.pt``/``.pth`` go through ``torch.load(weights_only=True)`` (tensors and plain
containers only, never arbitrary objects); ``.safetensors`` through safetensors. A
Lightning-style ``{"state_dict": ...}`` wrapper is unwrapped, training-only ``loss.*``
weights are dropped, and :func:`check_state_dict` refuses keys or shapes that do not
match the model, naming the first mismatches.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Iterable, Mapping

import torch

from .errors import CheckpointError

IGNORED_PREFIXES: tuple[str, ...] = ("loss.",)


def load_state_dict(path: str | Path, ignore_prefixes: Iterable[str] = IGNORED_PREFIXES) -> dict[str, torch.Tensor]:
    """Read a checkpoint's tensors (CPU), unwrapping ``state_dict`` and dropping ignored prefixes."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p}: file not found")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            sd: object = load_file(str(p), device="cpu")
        except Exception as exc:
            raise CheckpointError(f"checkpoint {p}: not a readable safetensors file ({_short(exc)})") from None
    else:
        try:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
            raise CheckpointError(
                f"checkpoint {p}: cannot be loaded as weights only ({_short(exc)}); "
                "only tensors and plain containers are accepted"
            ) from None
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"checkpoint {p}: expected a mapping of tensors, found {type(sd).__name__}")
    prefixes = tuple(ignore_prefixes)
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not isinstance(k, str) or k.startswith(prefixes):
            continue
        if not isinstance(v, torch.Tensor):
            continue  # e.g. bookkeeping scalars
        out[k] = v
    return out


def check_state_dict(
    expected: Mapping[str, torch.Tensor | torch.Size | tuple[int, ...] | list[int]],
    got: Mapping[str, torch.Tensor],
    source: str,
    prefixes: tuple[str, ...] = ("encoder.", "decoder."),
    limit: int = 5,
    what: str = "the chosen config",
) -> None:
    """Raise CheckpointError unless ``got`` has exactly the ``expected`` keys and shapes under ``prefixes``."""
    exp = {k: tuple(v.shape if isinstance(v, torch.Tensor) else v) for k, v in expected.items() if k.startswith(prefixes)}
    have = {k: tuple(v.shape) for k, v in got.items() if k.startswith(prefixes)}
    problems: list[str] = []
    for k in exp:
        if k not in have:
            problems.append(f"missing {k}")
        elif have[k] != exp[k]:
            problems.append(f"{k} has shape {list(have[k])}, expected {list(exp[k])}")
    problems.extend(f"unexpected {k}" for k in have if k not in exp)
    if problems:
        shown = "; ".join(problems[:limit])
        more = f" (+{len(problems) - limit} more)" if len(problems) > limit else ""
        raise CheckpointError(f"checkpoint {source} does not match {what}: {len(problems)} mismatches: {shown}{more}")


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
