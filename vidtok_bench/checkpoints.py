"""Safe loading of untrusted model checkpoints.

``.ckpt``/``.pt``/``.pth`` go through ``torch.load(weights_only=True)`` (tensors and plain
containers only, never arbitrary objects); ``.safetensors`` through safetensors. A
Lightning-style ``{"state_dict": ...}`` wrapper is unwrapped, training-only ``loss.*``
weights are dropped, and :func:`check_state_dict` refuses keys or shapes that do not
match the model, naming the first mismatches.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import torch

from .errors import CheckpointError, check_path

IGNORED_PREFIXES: tuple[str, ...] = ("loss.",)


def load_state_dict(path: str | Path, ignore_prefixes: Iterable[str] = IGNORED_PREFIXES) -> dict[str, torch.Tensor]:
    """Read a checkpoint's tensors (CPU), unwrapping ``state_dict`` and dropping ignored prefixes."""
    p = check_path(path, "checkpoint", CheckpointError)
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            sd: object = load_file(str(p), device="cpu")
        except Exception as exc:
            raise CheckpointError(f"{p}: not a PyTorch/safetensors checkpoint (safetensors: {_short(exc)})") from None
    else:
        sd = _torch_load_weights_only(p)
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


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format
_PICKLE_PROTO = 0x80  # first byte of a protocol >= 2 pickle (torch.save's legacy format)


def _torch_load_weights_only(p: Path) -> object:
    """``torch.load(weights_only=True)`` with one-line errors of our own.

    PyTorch's messages span many lines and advise re-running with ``weights_only=False``,
    which would execute code from an untrusted file; we never do that, so we never say it.
    """
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise CheckpointError(f"{p}: cannot read file ({exc.strerror or exc})") from None
    if not head:
        raise CheckpointError(f"{p}: not a PyTorch/safetensors checkpoint (empty file)")
    if not head.startswith(_ZIP_MAGIC) and head[0] != _PICKLE_PROTO:
        raise CheckpointError(f"{p}: not a PyTorch/safetensors checkpoint (neither a zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():
            # "Detected pickle protocol N": noise about a file we either load or refuse anyway
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # garbage makes torch raise UnpicklingError, RuntimeError, KeyError, EOFError, ...
        banned = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", str(exc), re.IGNORECASE)
        if banned:
            raise CheckpointError(
                f"{p}: refused: it holds a Python object ({banned.group(1)}), not only tensors; checkpoints "
                "are loaded weights only (tensors and plain containers), never as arbitrary objects"
            ) from None
        raise CheckpointError(f"{p}: not a PyTorch/safetensors checkpoint ({_torch_detail(exc)})") from None


_TORCH_ADVICE = ("weights only load failed", "weights_only", "check the documentation", "please file an issue",
                 "please use", "in pytorch 2.6")


def _torch_detail(exc: BaseException) -> str:
    """The informative line of a torch.load error, without PyTorch's advice (first sentence, short)."""
    for raw in str(exc).splitlines():
        line = raw.strip().removeprefix("WeightsUnpickler error:").strip()  # e.g. "Unsupported operand 149"
        if line and not any(a in line.lower() for a in _TORCH_ADVICE):
            line = line.split(". ")[0].rstrip(".")[:160]
            return line if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {line}"
    return f"damaged data ({type(exc).__name__})"
