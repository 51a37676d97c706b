"""Speed and memory of one tokenizer over a grid of clip sizes and lengths (``vidtok-bench profile``).

Each point fits its frame count to the tokenizer's frame rule and its size to the spatial
multiple, warms up, then times ``encode`` and ``decode`` separately (median over repeats,
CUDA-synchronised), records peak memory per phase (CUDA: max allocated; CPU: peak RSS,
``VmHWM`` reset per phase), FLOPs and achieved TFLOP/s / MFU. A point that runs out of
memory is marked ``OOM`` and the sweep goes on; on the CPU a point whose estimated
activation memory exceeds ``max_memory_gb`` is marked ``OOM`` without running, because
Linux would rather kill the process than raise an allocation error.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import math
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .config import check_bool, check_int, resolve_device
from .errors import BenchError, ConfigError, check_choice
from .flops import achieved, meta_costs, run_costs
from .precision import PRECISIONS, get_precision

OK, OOM, NOT_APPLICABLE, ERROR = "ok", "OOM", "n/a", "error"


@dataclass
class ProfileSpec:
    """What to profile; every field is a ``KEY=VALUE`` argument of ``vidtok-bench profile``."""

    tokenizer: str = "trilinear_488"
    sizes: list[int] = field(default_factory=lambda: [256, 512, 720, 1080])
    frames: list[int] = field(default_factory=lambda: [17, 33, 65])
    #: frame width / height; 1 gives the square crops the benchmark protocols evaluate
    aspect: float = 1.0
    batch: int = 1
    precision: str = "fp32"
    device: str = "auto"
    repeats: int = 3
    warmup: int = 1
    #: [None]: the tokenizer's own setting; [false, true] compares tiled and untiled runs (a value the tokenizer
    #: cannot take gives n/a points while another applies; a tokenizer taking none is a ConfigError)
    tiling: list[bool | None] = field(default_factory=lambda: [None])
    #: skip points whose estimated activation memory exceeds this; None: 90% of free RAM on CPU, no guard on CUDA
    max_memory_gb: float | None = None
    #: let cuDNN pick the fastest kernels per shape (every point has a static shape; warm-up pays the search)
    cudnn_benchmark: bool = True
    output_dir: str | None = None
    plot: bool = True
    #: table formats written besides profile.md and the per-point profile.csv: latex (profile.tex), html (profile.html)
    formats: list[str] = field(default_factory=list)
    tokenizer_overrides: dict[str, Any] = field(default_factory=dict)

    def out_dir(self) -> Path:
        return Path(self.output_dir or Path("outputs") / "profile" / self.tokenizer)


def parse_overrides(args: list[str]) -> ProfileSpec:
    """Hydra-style ``KEY=VALUE`` arguments (``sizes=[256,512]``, ``tokenizer.checkpoint=PATH``) to a spec."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(args))
    except HydraException as exc:
        raise ConfigError(f"invalid profile argument: {str(exc).strip().splitlines()[0]}") from None
    spec = ProfileSpec()
    known = [f for f in ProfileSpec.__dataclass_fields__ if f != "tokenizer_overrides"]
    for ov in parsed:
        key, value = ov.key_or_group, ov.value()
        if key.startswith("tokenizer."):
            spec.tokenizer_overrides[key.split(".", 1)[1]] = value
        elif key in known:
            setattr(spec, key, value)
        else:
            raise ConfigError(f"unknown profile key '{key}'; known: {', '.join(known)}, tokenizer.KEY")
    return _checked(spec)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _checked(spec: ProfileSpec) -> ProfileSpec:
    """Every option checked as ``run`` checks its own (one-line ConfigError), before anything is built or measured."""
    spec.sizes = [check_int("profile: sizes", s, 1) for s in _as_list(spec.sizes)]
    spec.frames = [check_int("profile: frames", f, 1) for f in _as_list(spec.frames)]
    if not spec.sizes or not spec.frames:
        raise ConfigError("profile: sizes and frames must be non-empty lists of positive integers")
    spec.tiling = [None if t is None else check_bool("profile: tiling", t) for t in _as_list(spec.tiling)]
    if not spec.tiling or len(set(spec.tiling)) != len(spec.tiling):  # a repeated value would measure the same points twice
        raise ConfigError(f"profile: tiling={json.dumps(spec.tiling)} must list some of null, false, true, each once")
    spec.repeats, spec.warmup, spec.batch = (check_int("profile: repeats", spec.repeats, 1),
                                             check_int("profile: warmup", spec.warmup, 0), check_int("profile: batch", spec.batch, 1))
    spec.aspect = _check_positive("profile: aspect", spec.aspect)
    spec.max_memory_gb = _check_positive("profile: max_memory_gb", spec.max_memory_gb, allow_none=True)
    spec.cudnn_benchmark = check_bool("profile: cudnn_benchmark", spec.cudnn_benchmark)
    spec.plot = check_bool("profile: plot", spec.plot)
    check_choice("profile: precision", spec.precision, PRECISIONS)
    spec.formats = [str(f) for f in _as_list(spec.formats)]
    for f in spec.formats:
        check_choice("profile: formats", f, TABLE_FILES)
    if isinstance(spec.output_dir, (list, dict, bool)):
        raise ConfigError(f"profile: output_dir={spec.output_dir!r} must be a folder path")
    spec.output_dir = None if spec.output_dir is None else str(spec.output_dir)  # output_dir=2024 parses as an int
    return spec


def _check_positive(key: str, value: Any, allow_none: bool = False) -> float | None:
    """A finite number > 0 (config.py checks integers and booleans only): NaN would disable the memory guard."""
    if value is None and allow_none:
        return None
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{key}={value!r} must be a number > 0" + (" or null" if allow_none else ""))
    return float(value)


def check_output_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and write a scratch file there: a sweep can take hours, and an output path found
    unusable only when the results are written would lose every measurement."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"profile: cannot write results to {out_dir}: it is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise ConfigError(f"profile: cannot write results to {out_dir}: {exc.strerror or exc}") from None


# ----------------------------------------------------------------------------- memory
def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory failure (CUDA, or a CPU allocation that failed)."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        s in msg for s in ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate", "bad_alloc"))


def _proc_status_bytes(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status_bytes("VmHWM") is not None
    except OSError:
        return False


def _malloc_trim() -> None:
    """Give freed heap back to the OS, so the next phase's RSS peak is its own and not the last one's leftovers."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Peak memory while the ``with`` block runs: ``peak_bytes`` (absolute) and ``delta_bytes`` (above the start).

    CUDA: ``max_memory_allocated``. CPU: resident set size, from ``VmHWM`` after resetting it,
    else sampled every millisecond with psutil (which can miss short spikes).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "peak_rss"
        self.peak_bytes = self.delta_bytes = 0
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self._sampled = 0

    def __enter__(self) -> "PeakMemory":
        # no gc.collect() here: tensors die by reference count, and a full collection costs ~0.3 s with torch loaded
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        _malloc_trim()
        self._base = _rss()
        if not _reset_peak_rss():
            self._sampled = self._base
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._sampled = max(self._sampled, _rss())

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            peak = max(self._sampled, _rss())
        else:
            peak = _proc_status_bytes("VmHWM") or _rss()
        self.peak_bytes, self.delta_bytes = int(peak), max(0, int(peak - self._base))


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


# ----------------------------------------------------------------------------- one point
def fit_shape(tokenizer: Any, size: int, frames: int, aspect: float = 1.0, batch: int = 1) -> tuple[int, ...]:
    """(B,3,T,H,W): frames fitted up to the frame rule, H and W raised to the minimum frame size and rounded up
    to the spatial multiple."""
    m = int(getattr(tokenizer, "spatial_multiple", 1) or 1)
    mh, mw = getattr(tokenizer, "min_frame_size", (1, 1))

    def up(v: float, least: int) -> int:
        return max(m, int(math.ceil(max(v, least) / m)) * m)

    return (batch, 3, tokenizer.frame_rule.fit_up(int(frames)), up(size, mh), up(size * aspect, mw))


@contextlib.contextmanager
def numerics(device: torch.device, precision: str, cudnn_benchmark: bool = True) -> Iterator[None]:
    """The precision the runner would use (fp32 means TF32 off on CUDA), under inference mode."""
    old_bench = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark) and device.type == "cuda"
    try:
        with torch.inference_mode(), get_precision(precision).scope(device):
            yield
    finally:
        torch.backends.cudnn.benchmark = old_bench


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float, PeakMemory]:
    with PeakMemory(device) as mem:
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        dt = time.perf_counter() - t0
    return out, dt, mem


def memory_limit_bytes(spec: ProfileSpec, device: torch.device) -> float | None:
    if spec.max_memory_gb is not None:
        return spec.max_memory_gb * 2**30
    if device.type == "cpu":
        import psutil

        return 0.9 * psutil.virtual_memory().available
    return None


def rough_activation_bytes(shape: tuple[int, ...]) -> int:
    """Fallback estimate for tokenizers without a meta-device copy: input, latent, output and one temporary in fp32."""
    return 4 * 4 * math.prod(shape)


def profile_point(tok: Any, shape: tuple[int, ...], spec: ProfileSpec, device: torch.device,
                  limit_bytes: float | None) -> dict[str, Any]:
    """Measure one (size, frames, tiling) point; never raises for OOM or a failing tokenizer."""
    rec: dict[str, Any] = {"status": OK, "note": None}
    costs = meta_costs(tok, shape)  # one meta-device pass: FLOPs and activation sizes, no memory spent
    est = max(c["bytes"] for c in costs.values()) if costs else rough_activation_bytes(shape)
    rec["estimated_activation_bytes"] = est
    if limit_bytes is not None and est > limit_bytes:
        rec.update(status=OOM, note=f"not run: estimated activations {est / 2**30:.3g} GiB > limit {limit_bytes / 2**30:.3g} GiB (max_memory_gb)")
        return rec
    flops: dict[str, int] | None = {k: c["flops"] for k, c in costs.items()} if costs else None
    tensors: dict[str, int] | None = None
    x = latent = y = None
    try:
        x = (torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
        with numerics(device, spec.precision, spec.cudnn_benchmark):
            for _ in range(spec.warmup):
                tok.decode(tok.encode(x))
            enc_t, dec_t, enc_m, dec_m = [], [], [], []
            for _ in range(spec.repeats):
                latent, te, me = _timed(lambda: tok.encode(x), device)
                y, td, md = _timed(lambda: tok.decode(latent), device)
                enc_t.append(te), dec_t.append(td), enc_m.append(me), dec_m.append(md)
                latent = y = None
            if flops is None or device.type != "cuda":
                # one more, untimed call, after every lazy load (weights come with the first call): the FLOPs no meta
                # copy gave and, off CUDA, the tensors' peak
                got = run_costs(tok, shape, flops=flops is None)
                flops = flops or {k: v["flops"] for k, v in got.items()}
                tensors = {k: v["bytes"] for k, v in got.items()}
    except BenchError:
        raise  # configuration problems (missing checkpoint, bad shape) are the user's to fix, not a data point
    except Exception as exc:  # noqa: BLE001 - one failing point must not end the sweep
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        rec.update(status=OOM if is_oom(exc) else ERROR, note=f"{type(exc).__name__}: {first_line}")
        return rec
    finally:
        del x, latent, y
        if rec["status"] != OK:
            gc.collect()  # a traceback's frames can hold the failed point's tensors in a cycle
        if device.type == "cuda":
            torch.cuda.empty_cache()
    rec.update(_summary(enc_t, dec_t, enc_m, dec_m, flops, tensors, device, spec.precision))
    return rec


def _summary(enc_t: list[float], dec_t: list[float], enc_m: list[PeakMemory], dec_m: list[PeakMemory],
             flops: dict[str, int] | None, tensors: dict[str, int] | None, device: torch.device, precision: str) -> dict[str, Any]:
    """Medians, rates and peaks of both phases; ``tensors``: the tensors' own peak per phase (CUDA: max allocated is)."""
    out: dict[str, Any] = {"memory_kind": enc_m[0].kind}
    for phase, times, mems in (("encode", enc_t, enc_m), ("decode", dec_t, dec_m)):
        sec = statistics.median(times)
        f = (flops or {}).get(phase) or None  # 0: no matmul or convolution ran (resampling, codecs), not no work
        ach = achieved(f, sec, device, precision)
        out.update({
            f"{phase}_s": sec, f"{phase}_times_s": times, f"{phase}_flops": f,
            f"{phase}_tflops": ach["tflops"], f"{phase}_mfu": ach["mfu"],
            f"{phase}_peak_bytes": max(m.peak_bytes for m in mems),
            f"{phase}_delta_bytes": max(m.delta_bytes for m in mems),
        })
        out[f"{phase}_tensor_peak_bytes"] = out[f"{phase}_delta_bytes"] if device.type == "cuda" else (tensors or {}).get(phase)
    out["peak_delta_bytes"] = max(out["encode_delta_bytes"], out["decode_delta_bytes"])
    peaks = [out["encode_tensor_peak_bytes"], out["decode_tensor_peak_bytes"]]
    out["tensor_peak_bytes"] = None if None in peaks else max(peaks)
    return out


# ----------------------------------------------------------------------------- the sweep
def _build(spec: ProfileSpec, device: torch.device, tiling: bool | None) -> Any:
    from . import create_tokenizer

    kw = dict(spec.tokenizer_overrides)
    if tiling is not None:
        kw["tiling"] = tiling
    tok = create_tokenizer(spec.tokenizer, device=device, **kw)
    tok.check_values = False  # inputs are the sweep's own uniform [-1,1] noise; timed calls are the model's alone
    return tok


def run_profile(spec: ProfileSpec, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Profile every (tiling, frames, size) point and write the outputs; returns what profile.json holds.

    Bad options and an unusable output folder are refused before the first point is measured; a sweep
    stopped by a configuration error or Ctrl-C still writes the points measured so far."""
    from .environment import environment

    spec = _checked(spec)  # the Python API gets the CLI's checks too
    device = resolve_device(spec.device)
    check_output_dir(spec.out_dir())
    limit = memory_limit_bytes(spec, device)
    result = {"tokenizer": {"name": spec.tokenizer}, "spec": asdict(spec), "device": str(device),
              "memory_limit_bytes": limit, "environment": environment(device), "points": []}
    try:
        _sweep(spec, device, limit, result, log)
    except (BenchError, KeyboardInterrupt):
        if any(p["status"] == OK for p in result["points"]):
            with contextlib.suppress(OSError):  # the error being raised is the one to report
                write_outputs({**result, "incomplete": True}, spec.out_dir(), plot=spec.plot, formats=spec.formats)
                if log:
                    log(f"stopped: the points done so far are in {spec.out_dir() / 'profile.md'}")
        raise
    write_outputs(result, spec.out_dir(), plot=spec.plot, formats=spec.formats)
    return result


def _sweep(spec: ProfileSpec, device: torch.device, limit: float | None, result: dict[str, Any],
           log: Callable[[str], None] | None) -> None:
    """Measure every point into ``result["points"]`` as it finishes, and the tokenizer's info into ``result``.

    A tiling value the tokenizer cannot take (``tiling=true`` on VidTok v1.0) gives ``n/a`` points while
    another value applies; when none does, the tokenizer has no such setting and that is a ConfigError,
    as it is for a single value."""
    points = result["points"]
    info: dict[str, Any] | None = None
    refused: ConfigError | None = None
    for tiling in spec.tiling:
        try:
            tok = _build(spec, device, tiling)
        except ConfigError as exc:
            if tiling is None or len(spec.tiling) == 1:
                raise
            tok, why, refused = None, str(exc), refused or exc
        if tok is not None and info is None:
            info = result["tokenizer"] = tok.info(weights=False)
        for frames in spec.frames:
            for size in spec.sizes:
                base = {"size": size, "frames_requested": frames, "tiling": tiling}
                if tok is None:
                    points.append({**base, "status": NOT_APPLICABLE, "note": why})
                    continue
                shape = fit_shape(tok, size, frames, spec.aspect, spec.batch)
                base.update(tiling=getattr(tok, "tiling", tiling), frames=shape[2], height=shape[3], width=shape[4],
                            pixels=shape[2] * shape[3] * shape[4])
                rec = {**base, **profile_point(tok, shape, spec, device, limit)}
                points.append(rec)
                if log:
                    log(_line(rec))
    if info is None:
        assert refused is not None
        raise refused


def _line(p: dict[str, Any]) -> str:
    where = f"{p.get('frames', p['frames_requested'])}x{p.get('height', p['size'])}x{p.get('width', p['size'])}"
    tiled = "" if p["tiling"] is None else f" tiling={str(p['tiling']).lower()}"
    if p["status"] != OK:
        return f"  {where}{tiled}: {p['status']} ({p['note']})"
    return (f"  {where}{tiled}: encode {p['encode_s']:.4g} s, decode {p['decode_s']:.4g} s, "
            f"peak +{p['peak_delta_bytes'] / 2**20:.1f} MiB")


# ----------------------------------------------------------------------------- outputs
#: (key, label, precision) of the markdown table; None precision: text
TABLE_COLUMNS = (
    ("resolution", "T×H×W", None), ("tiling", "Tiling", None), ("status", "Status", None),
    ("encode_s", "Enc. s", 4), ("decode_s", "Dec. s", 4),
    ("encode_gflops", "Enc. GFLOP/s", 1), ("decode_gflops", "Dec. GFLOP/s", 1),
    ("encode_mfu", "Enc. MFU", 3), ("decode_mfu", "Dec. MFU", 3),
    ("peak_mib", "Peak mem. (MiB)", 1), ("tensor_mib", "Tensor peak (MiB)", 1), ("gflop", "GFLOP enc+dec", 1),
)
CSV_KEYS = ("size", "frames_requested", "frames", "height", "width", "pixels", "tiling", "status", "encode_s", "decode_s",
            "encode_flops", "decode_flops", "encode_tflops", "decode_tflops", "encode_mfu", "decode_mfu",
            "encode_peak_bytes", "decode_peak_bytes", "encode_delta_bytes", "decode_delta_bytes", "memory_kind",
            "encode_tensor_peak_bytes", "decode_tensor_peak_bytes",
            "estimated_activation_bytes", "note")


def _table_value(p: dict[str, Any], key: str) -> Any:
    if key == "resolution":
        return f"{p.get('frames', p['frames_requested'])}×{p.get('height', p['size'])}×{p.get('width', p['size'])}"
    if key == "tiling":
        return "—" if p["tiling"] is None else str(p["tiling"]).lower()
    if key in ("peak_mib", "tensor_mib"):
        b = p.get("peak_delta_bytes" if key == "peak_mib" else "tensor_peak_bytes")
        return None if b is None else b / 2**20
    if key.endswith("_gflops"):  # GFLOP/s: readable for CPUs (a few dozen) and GPUs (tens of thousands) alike
        t = p.get(key.replace("_gflops", "_tflops"))
        return None if t is None else t * 1e3
    if key == "gflop":
        f = [p.get("encode_flops"), p.get("decode_flops")]
        return None if None in f else sum(f) / 1e9
    return p.get(key)


#: table format -> file suffix (markdown is always written, as profile.md with notes)
TABLE_FILES = {"markdown": ".md", "latex": ".tex", "html": ".html"}


def markdown_table(points: list[dict[str, Any]], fmt: str = "markdown") -> str:
    """The points as a table (markdown, latex or html), rendered by the leaderboard's ``table`` code (missing: an em dash)."""
    return _render([{key: _table_value(p, key) for key, _, _ in TABLE_COLUMNS} for p in points], TABLE_COLUMNS, fmt)


def _render(rows: list[dict[str, Any]], columns: tuple[tuple[str, str, int | None], ...], fmt: str) -> str:
    import pandas as pd

    from .report.table import Column, render

    cols = {key: Column(label, prec) for key, label, prec in columns}
    df = pd.DataFrame(rows, columns=list(cols))
    df.attrs["columns"] = cols
    return render(df, fmt)


#: (key, label, precision) of the tiled-versus-untiled table
TILING_COLUMNS = (("resolution", "T×H×W", None), ("encode_x", "Enc. time ×", 2), ("decode_x", "Dec. time ×", 2),
                  ("peak_x", "Tensor peak ×", 2))


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def tiling_comparison(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each tiled point measured beside an untiled one of the same T×H×W: its times and peak memory as multiples
    of the untiled ones (below 1: tiling saves, above 1: it costs)."""
    untiled = {_table_value(p, "resolution"): p for p in points if p["status"] == OK and p["tiling"] is False}
    rows = []
    for p in points:
        u = untiled.get(_table_value(p, "resolution")) if p["status"] == OK and p["tiling"] is True else None
        if u is not None:
            rows.append({"resolution": _table_value(p, "resolution"), "encode_x": _ratio(p["encode_s"], u["encode_s"]),
                         "decode_x": _ratio(p["decode_s"], u["decode_s"]),
                         "peak_x": _ratio(p["tensor_peak_bytes"], u["tensor_peak_bytes"])})
    return rows


def write_outputs(result: dict[str, Any], out_dir: Path, plot: bool = True, formats: list[str] | tuple[str, ...] = ()) -> dict[str, Path]:
    """profile.json (everything), profile.csv (one row per point), profile.md (table + notes), profile.tex /
    profile.html for the other ``formats``, profile.png/.svg."""
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    points = result["points"]
    paths = {"json": out_dir / "profile.json", "csv": out_dir / "profile.csv", "md": out_dir / "profile.md"}
    paths["json"].write_text(json.dumps({**result, "tiling_comparison": tiling_comparison(points)}, indent=2, default=str) + "\n")
    with paths["csv"].open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_KEYS), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows([{k: ("" if p.get(k) is None else p.get(k)) for k in CSV_KEYS} for p in points])
    tok = result["tokenizer"].get("name", "?")
    batch = int(result["spec"].get("batch") or 1)
    notes = [f"- {_line(p).strip()}" for p in points if p["status"] != OK]
    md = [f"# Profile: {tok} on {result['device']} ({result['spec']['precision']}, {_per_call(batch)})", "",
          markdown_table(points)]
    if tiled := tiling_comparison(points):
        md += ["Tiled against untiled (multiples of the untiled point; below 1: tiling saves, above 1: it costs):", "",
               _render(tiled, TILING_COLUMNS, "markdown")]
    if notes:
        md += ["Points not measured:", "", *notes, ""]
    if result.get("incomplete"):
        md += ["The sweep was stopped before its last point; these are the points done until then.", ""]
    md.append("Peak memory is the most held above the start of each phase (encode, decode): CUDA max allocated, CPU peak "
              "resident set size (which also keeps the allocator's cached heap); tensor peak counts the tensors alive at once "
              "(CUDA: the same; CPU: one more, untimed call after the timed ones). MFU is against the GPU's dense peak "
              "(none on CPUs or unlisted GPUs).")
    paths["md"].write_text("\n".join(md) + "\n")
    for fmt in formats:
        if fmt != "markdown":
            paths[fmt] = out_dir / f"profile{TABLE_FILES[fmt]}"
            paths[fmt].write_text(markdown_table(points, fmt) + "\n")
    if plot:
        paths.update(plot_profile(points, out_dir / "profile", title=f"{tok} ({result['device']}, {result['spec']['precision']})",
                                  batch=batch))
    return paths


def _per_call(batch: int) -> str:
    """What one timed call codes: times and peak memory are per call, T×H×W per clip."""
    return "one clip per call" if batch == 1 else f"{batch} clips per call"


def plot_profile(points: list[dict[str, Any]], stem: Path, title: str = "", batch: int = 1) -> dict[str, Path]:
    """Time (encode+decode) and peak memory of one call of ``batch`` clips against pixels per clip, one line per
    frame count (dashed: tiled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    groups: dict[tuple[int, Any], list[dict[str, Any]]] = {}
    for p in points:
        if p["status"] == OK:
            groups.setdefault((p["frames"], p["tiling"]), []).append(p)
    for (frames, tiling), ps in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        ps.sort(key=lambda p: p["pixels"])
        px = [p["pixels"] for p in ps]
        label = f"{frames} frames" + ("" if tiling is None else f", tiling={str(tiling).lower()}")
        style = "--" if tiling else "-"
        ax_t.plot(px, [p["encode_s"] + p["decode_s"] for p in ps], style, marker="o", label=label)
        ax_m.plot(px, [p["peak_delta_bytes"] / 2**20 for p in ps], style, marker="o", label=label)
    for ax, ylabel in ((ax_t, f"encode + decode (s, {_per_call(batch)})"), (ax_m, "peak memory above start (MiB)")):
        ax.set_xlabel("pixels per clip (T·H·W)")
        ax.set_ylabel(ylabel)
        ax.set_xscale("log")
        ax.set_yscale("symlog" if ax is ax_m else "log")
        ax.grid(True, which="both", alpha=0.3)
        if groups:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out = {"png": stem.with_suffix(".png"), "svg": stem.with_suffix(".svg")}
    for path in out.values():
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return out
