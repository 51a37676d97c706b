"""FLOPs of a tokenizer's encode/decode, and how much of a GPU's peak a measured time reaches.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls,
attention; element-wise ops count 0, as in the usual MFU convention). Tokenizers that can
run their model on the meta device (``meta_copy()``, e.g. VidTok) are counted without
weights, memory or compute, so a full-size 17x256x256 count takes about a second on a CPU;
any other tokenizer is run once, for real, on a zero clip of the given shape.
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Any, Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

#: dense (no 2:4 sparsity) peak TFLOP/s from NVIDIA's datasheets; fp32 is the non-tensor-core rate,
#: bf16/fp16 assume fp32 accumulation (what autocast uses; the RTX 4090 doubles with fp16 accumulation)
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 SXM": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100 PCIe": {"bf16": 756.5, "fp16": 756.5, "tf32": 378.0, "fp32": 51.2},
    "H100 NVL": {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "H200": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H200 NVL": {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "A100": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.05, "fp16": 362.05, "tf32": 183.0, "fp32": 91.6},
    "RTX 4090": {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6},
}
_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def gpu_model(name: str) -> str | None:
    """The :data:`PEAK_TFLOPS` key for a CUDA device name (``torch.cuda.get_device_name``), or None."""
    n = name.lower().replace("-", " ")
    if "h200" in n:
        return "H200 NVL" if "nvl" in n else "H200"
    if "h100" in n:
        return "H100 NVL" if "nvl" in n else "H100 PCIe" if "pcie" in n else "H100 SXM"  # "H100 80GB HBM3" is the SXM part
    if "a100" in n:
        return "A100"
    if "l40s" in n:
        return "L40S"
    if "4090" in n and "4090 d" not in n:  # the China-market 4090 D has fewer SMs
        return "RTX 4090"
    return None


def _precision_name(dtype: torch.dtype | str) -> str:
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPE_NAMES:
            raise ValueError(f"no peak-FLOP figure for dtype {dtype}")
        return _DTYPE_NAMES[dtype]
    name = str(dtype).lower()
    aliases = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
    return aliases.get(name, name)


def device_peak_flops(device: torch.device | str, dtype: torch.dtype | str) -> float | None:
    """Dense peak FLOP/s of ``device`` for ``dtype`` (torch dtype or fp32/tf32/bf16/fp16).

    ``device`` is a torch device or a GPU name such as ``"NVIDIA H100 80GB HBM3"``. None for
    CPUs and GPUs not in :data:`PEAK_TFLOPS`: an MFU against a guessed peak would mislead.
    """
    name: str | None
    if isinstance(device, str):
        try:
            device = torch.device(device)
        except RuntimeError:
            name = device
        else:
            name = None
    if isinstance(device, torch.device):
        if device.type != "cuda" or not torch.cuda.is_available():
            return None
        name = torch.cuda.get_device_name(device)
    model = gpu_model(name or "")
    if model is None:
        return None
    tflops = PEAK_TFLOPS[model].get(_precision_name(dtype))
    return None if tflops is None else tflops * 1e12


def achieved(flops: int | float | None, seconds: float | None, device: torch.device | str,
             dtype: torch.dtype | str) -> dict[str, float | None]:
    """``{"tflops": achieved TFLOP/s, "mfu": fraction of the dense peak}``; None where unknown."""
    return rate_and_mfu(flops, seconds, device_peak_flops(device, dtype))


def rate_and_mfu(flops: int | float | None, seconds: float | None, peak_flops: float | None) -> dict[str, float | None]:
    """:func:`achieved` against a known peak (FLOP/s; None: no MFU), e.g. the peak merged parts share."""
    if not flops or not seconds or seconds <= 0:
        return {"tflops": None, "mfu": None}
    rate = float(flops) / seconds
    return {"tflops": rate / 1e12, "mfu": rate / peak_flops if peak_flops else None}


# ----------------------------------------------------------------------------- counting
def _stand_in(tokenizer: Any) -> Any:
    """The tokenizer's meta-device copy when it offers one, else the tokenizer itself."""
    meta_copy = getattr(tokenizer, "meta_copy", None)
    return meta_copy() if callable(meta_copy) else tokenizer


def _measure(tokenizer: Any, shape: Sequence[int],
             modes: dict[str, tuple[Callable[[], Any], Callable[[Any], int]]], stand_in: bool = True) -> dict[str, dict[str, int]]:
    """Encode then decode a zero clip once, under every mode in ``modes`` (name: (factory, read)) at once, on the
    tokenizer's meta copy when it has one and ``stand_in``; returns ``{"encode": {name: read(mode)}, "decode": {...}}``."""
    tok = _stand_in(tokenizer) if stand_in else tokenizer
    x = torch.zeros(tuple(shape), device=tok.device)
    out: dict[str, dict[str, int]] = {}
    latent = x
    with torch.no_grad():
        for phase in ("encode", "decode"):
            with contextlib.ExitStack() as stack:
                active = {name: stack.enter_context(factory()) for name, (factory, _) in modes.items()}
                latent = tok.encode(x) if phase == "encode" else tok.decode(latent)
            out[phase] = {name: modes[name][1](mode) for name, mode in active.items()}
    return out


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return torch.utils.flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


#: kernels torch's registry misses: its CPU attention kernel would otherwise count 0 in real CPU runs
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop}


def flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts CPU attention."""
    return FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)


_FLOPS = (flop_counter, lambda m: int(m.get_total_flops()))


def count_flops(tokenizer: Any, shape: Sequence[int] = (1, 3, 17, 256, 256)) -> dict[str, int]:
    """FLOPs of one ``encode`` and one ``decode`` of a clip of ``shape`` (B,3,T,H,W).

    ``shape`` must already satisfy the tokenizer's frame rule and spatial multiple.
    """
    got = _measure(tokenizer, shape, {"flops": _FLOPS})
    return {phase: v["flops"] for phase, v in got.items()}


class LiveBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """Peak bytes of tensors created inside the mode and alive at once (views and in-place ops add nothing).

    On the meta device this estimates a model's activation memory without allocating it; it
    does not see library workspaces (oneDNN/cuDNN scratch), so treat it as a lower bound.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0

    def _free(self, n: int) -> None:
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        if func._schema.is_mutable:
            return out
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t._is_view():
                n = t.untyped_storage().nbytes()
                self.live += n
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, n)
        return out


def estimate_activation_bytes(tokenizer: Any, shape: Sequence[int]) -> int | None:
    """Peak activation bytes of encode or decode at ``shape``, from a meta-device run; None when
    the tokenizer has no meta copy (a real run would spend the memory the estimate should guard)."""
    costs = meta_costs(tokenizer, shape)
    return None if costs is None else max(costs["encode"]["bytes"], costs["decode"]["bytes"])


def meta_flops(tokenizer: Any, shape: Sequence[int]) -> dict[str, int] | None:
    """FLOPs of one encode and one decode at ``shape`` from the tokenizer's meta-device copy, or None:
    without a meta copy (codecs, plain tensor tokenizers) or when its model cannot run on the meta
    device. Costs no weights, memory or compute, so the runner counts every batch shape it meets."""
    if not callable(getattr(tokenizer, "meta_copy", None)):
        return None
    try:
        return count_flops(tokenizer, shape)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):  # an op without a meta kernel
        return None


def run_costs(tokenizer: Any, shape: Sequence[int], flops: bool = True) -> dict[str, dict[str, int]]:
    """Peak bytes of the tensors alive at once (``bytes``) and, when ``flops``, FLOPs of one real encode and decode:
    on a CPU the tensors' own peak, which the resident set size mixes with the allocator's cached heap."""
    modes = {"bytes": (LiveBytes, lambda m: m.peak)}
    if flops:
        modes["flops"] = _FLOPS
    return _measure(tokenizer, shape, modes, stand_in=False)


def meta_costs(tokenizer: Any, shape: Sequence[int]) -> dict[str, dict[str, int]] | None:
    """FLOPs and activation bytes of encode and decode from one meta-device pass
    (``{"encode": {"flops", "bytes"}, "decode": {...}}``); None without a meta copy."""
    if not callable(getattr(tokenizer, "meta_copy", None)):
        return None
    return _measure(tokenizer, shape, {"flops": _FLOPS, "bytes": (LiveBytes, lambda m: m.peak)})
