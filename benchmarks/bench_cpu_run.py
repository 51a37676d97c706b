"""End-to-end CPU run, old revision against this tree, in one benchmark run (issue #12 item 5).

The workload is a proxy of the issue's: one real 640x272 video (the shared ``tears_of_steel_640x360.mp4``
centre-cropped to 640x272 rows, re-encoded losslessly; beyond its 240 frames ``caminandes_640x360.mp4``
follows), a random-init FSQ-262144 VidTok v1.0 causal 4x8x8 with ``ch=12`` saved as a local
``.safetensors``, metrics ``psnr,ssim,lpips`` (the vidtok protocol: LPIPS-VGG) at native size
(``protocol.size=null protocol.crop=none``), 17-frame clips, ``device=cpu``.

"old" is the committed revision ``VIDTOK_BENCH_OLD_REV`` (default 3bde224, before this work) exported
with ``git archive`` and run in a subprocess exactly like "new" (this checkout): the whole
``vidtok-bench run`` command (imports, Hydra compose, weights, decoding, model, metrics, writing) in a
fresh process each, so wall time, process CPU time (user+sys of the child, all threads) and peak RSS
(``ru_maxrss`` of the child) are the command's own. Both runs must give the same metric values within
each metric's declared tolerance (``MetricInfo.tolerance``), per frame.

Sizes: ``VIDTOK_BENCH_CPU_FRAMES`` frames (default 68 = 4 clips, a few minutes for both runs on 2 cores;
250 is the issue's size); ``VIDTOK_BENCH_CPU_ROUNDS`` rounds alternating old/new (default 1);
``VIDTOK_BENCH_NEW_ROOT`` runs another tree as "new" (default: this checkout; e.g. a ``git archive`` of a
commit, so the checkout can change while the benchmark runs); ``VIDTOK_BENCH_OLD_REV=`` (empty) skips "old".
Run: pytest benchmarks/bench_cpu_run.py --benchmark-only -s
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from fractions import Fraction
from pathlib import Path

import pytest

#: the environment before this benchmark imported anything: each tree's run takes the runtime variables that
#: ``import vidtok_bench`` defaults (environment.RUNTIME_ENV) from here, so "old" runs without the defaults
#: the newer tree adds and "new" sets its own (a value the user set applies to both)
_ENV_BEFORE = dict(os.environ)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FRAMES = int(os.environ.get("VIDTOK_BENCH_CPU_FRAMES", 68))
ROUNDS = int(os.environ.get("VIDTOK_BENCH_CPU_ROUNDS", 1))
OLD_REV = os.environ.get("VIDTOK_BENCH_OLD_REV", "3bde224")
SOURCES = ("tears_of_steel_640x360.mp4", "caminandes_640x360.mp4")
WIDTH, HEIGHT = 640, 272

# The child: make ``vidtok_bench`` and its remapped folders (tokenizers/, datasets/, conf/ are installed as
# vidtok_bench.tokenizers etc.) come from ROOT whatever is installed, then run the CLI.
_BOOT = r"""
import importlib.machinery, importlib.util, os, sys
root = sys.argv[1]
sys.path.insert(0, root)
MAP = {"vidtok_bench.tokenizers": "tokenizers", "vidtok_bench.datasets": "datasets", "vidtok_bench.conf": "conf"}
class Finder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name in MAP:
            d = os.path.join(root, MAP[name])
            return importlib.util.spec_from_file_location(name, os.path.join(d, "__init__.py"), submodule_search_locations=[d])
        for pkg, sub in MAP.items():  # conf's data-only folders are namespace packages
            if name.startswith(pkg + ".") and name.count(".") == pkg.count(".") + 1:
                d = os.path.join(root, sub, name.rpartition(".")[2])
                if os.path.isdir(d) and not os.path.exists(os.path.join(d, "__init__.py")):
                    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
                    spec.submodule_search_locations = [d]
                    return spec
        return None
sys.meta_path.insert(0, Finder)
import vidtok_bench
assert os.path.dirname(vidtok_bench.__file__) == os.path.join(root, "vidtok_bench"), vidtok_bench.__file__
from vidtok_bench.cli import main
sys.exit(main(["run", *sys.argv[2:]]))
"""


def _make_video(path: Path, frames: int) -> None:
    """``frames`` frames of the shared 640x360 clips, centre 272 rows, lossless H.264 (qp 0) at 24 fps."""
    import av

    top = (360 - HEIGHT) // 2
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"qp": "0", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        stream.time_base = Fraction(1, 24)
        n = 0
        for name in SOURCES:
            with av.open(str(SHARED / "videos" / name)) as src:
                for frame in src.decode(video=0):
                    if n == frames:
                        break
                    rgb = frame.to_ndarray(format="rgb24")[top:top + HEIGHT]
                    vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p")
                    vf.pts = n
                    out.mux(stream.encode(vf))
                    n += 1
            if n == frames:
                break
        out.mux(stream.encode())
    assert n == frames, f"only {n} source frames"


def _make_checkpoint(path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from vidtok_bench.models.vidtok import VidTokArch, build_vidtok

    torch.manual_seed(0)
    arch = VidTokArch(version="1.0", causal=True, regularizer="fsq", z_channels=6, ch=12, fsq_levels=(8,) * 6)
    model = build_vidtok(arch)
    with torch.no_grad():  # perturb every parameter (zero-initialised layers included) so every path matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    if not (SHARED / "videos" / SOURCES[0]).is_file():
        pytest.skip(f"shared videos not found under {SHARED}")
    d = tmp_path_factory.mktemp("cpu_run")
    (d / "videos").mkdir()
    _make_video(d / "videos" / f"clip_{WIDTH}x{HEIGHT}.mp4", FRAMES)
    _make_checkpoint(d / "fsq262144_ch12.safetensors")
    from vidtok_bench.weights import manager

    weights = d / "weights"
    old = os.environ.get(manager.CACHE_ENV)
    os.environ[manager.CACHE_ENV] = str(weights)
    manager.import_path(SHARED / "weights", progress=None)
    if old is None:
        os.environ.pop(manager.CACHE_ENV)
    else:
        os.environ[manager.CACHE_ENV] = old
    trees = {"new": Path(os.environ.get("VIDTOK_BENCH_NEW_ROOT") or ROOT)}
    if OLD_REV:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_REV], check=True, capture_output=True).stdout
        old_root = d / "old"
        old_root.mkdir()
        with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
            tar.extractall(old_root, filter="data")
        trees["old"] = old_root
    return {"dir": d, "weights": weights, "trees": trees}


def overrides(w: dict, out: Path) -> list[str]:
    return ["tokenizer=vidtok_fsq_causal_488_262144", "tokenizer.ch=12",
            f"tokenizer.checkpoint={w['dir'] / 'fsq262144_ch12.safetensors'}",
            "dataset=folder", f"dataset.root={w['dir'] / 'videos'}", "protocol.size=null", "protocol.crop=none",
            "metrics=[psnr,ssim,lpips]", "device=cpu", "progress=false", f"output_dir={out}", *EXTRA]


#: extra overrides for both runs (e.g. VIDTOK_BENCH_CPU_EXTRA="batch_size=2")
EXTRA = os.environ.get("VIDTOK_BENCH_CPU_EXTRA", "").split()


def run_tree(root: Path, args: list[str], env: dict[str, str], log: Path) -> dict:
    """One ``vidtok-bench run`` of the tree at ``root`` in a fresh process: wall, CPU (user+sys), peak RSS."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-c", _BOOT, str(root), *args], env=env, stdout=f, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)  # the child's own rusage (CPU of all its threads, its peak RSS)
    wall = time.perf_counter() - t0
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    assert rc == 0, f"{root}: exit {rc}\n{log.read_text()[-3000:]}"
    cpu = ru.ru_utime + ru.ru_stime
    return {"wall_s": wall, "cpu_s": cpu, "cores": cpu / wall, "peak_rss_mb": ru.ru_maxrss / 1024}


def _stats(out: Path) -> dict[str, list[float]]:
    """Every frame's statistic per metric, in clip order."""
    rows = [json.loads(line) for line in (out / "per_clip.jsonl").read_text().splitlines() if line.strip()]
    stats: dict[str, list[float]] = {}
    for row in rows:
        assert row.get("status", "ok") == "ok", row
        for clip in row["clips"]:
            for name, values in clip["stats"].items():
                stats.setdefault(name, []).extend(values)
    return stats


def test_cpu_run_old_vs_new(benchmark, workload) -> None:
    from vidtok_bench.registry import METRICS

    from vidtok_bench.weights import manager

    env = {**os.environ, manager.CACHE_ENV: str(workload["weights"]), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    from vidtok_bench.environment import RUNTIME_ENV

    for k in RUNTIME_ENV:
        env.pop(k, None)
        if k in _ENV_BEFORE:
            env[k] = _ENV_BEFORE[k]
    runs: dict[str, list[dict]] = {k: [] for k in workload["trees"]}
    outs: dict[str, Path] = {}
    n = [0]

    def one(name: str) -> None:
        n[0] += 1
        out = workload["dir"] / f"out-{name}-{n[0]}"
        load = os.getloadavg()[0]
        r = run_tree(workload["trees"][name], overrides(workload, out), env, out.with_suffix(".log"))
        r["load_before"] = load
        runs[name].append(r)
        outs[name] = out
        print(f"\n{name}: {json.dumps({k: round(v, 2) for k, v in r.items()})}", flush=True)

    order = [k for k in ("old", "new") if k in workload["trees"]]

    def round_() -> None:
        for name in order:
            one(name)

    benchmark.pedantic(round_, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    best = {k: {m: min(r[m] for r in v) for m in ("wall_s", "cpu_s", "peak_rss_mb")} for k, v in runs.items()}
    info: dict[str, object] = {"frames": FRAMES, "size": f"{WIDTH}x{HEIGHT}", "rounds": ROUNDS, "old_rev": OLD_REV,
                               "runs": runs, "best": best}
    if "old" in best:
        info["new_over_old"] = {m: round(best["new"][m] / best["old"][m], 3) for m in best["new"]}
        info["speedup_wall"] = round(best["old"]["wall_s"] / best["new"]["wall_s"], 2)
        # identical values within each metric's declared tolerance, frame by frame
        old, new = _stats(outs["old"]), _stats(outs["new"])
        assert old.keys() == new.keys()
        diffs = {}
        for name in old:
            tol = float(METRICS.get(name).info.tolerance)
            assert len(old[name]) == len(new[name]) >= FRAMES, name  # the protocol scores the last clip whole
            diffs[name] = max(abs(a - b) for a, b in zip(old[name], new[name]))
            assert diffs[name] <= tol, (name, diffs[name], tol)
        info["max_abs_frame_diff"] = diffs
    benchmark.extra_info.update(info)
    print("\n" + json.dumps({k: v for k, v in info.items() if k != "runs"}, indent=1))
