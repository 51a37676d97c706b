"""Data pipeline throughput and memory: decode -> 30 fps stride sampling -> resize 256 (bilinear,
antialias, float) + centre crop -> 17-frame clips, on the shared 1080p and 720p clips.

Each file's pipeline frames/s is reported as a ratio to PyAV's bare threaded decode of the same
file (``thread_type="AUTO"``, frames neither converted nor resized) measured in the same test,
and, for reference, to decode + RGB conversion. Peak RSS of the whole pipeline over the 1080p
clip is measured in a fresh subprocess (``VmHWM``, else ``ru_maxrss``), beside subprocesses that only import
torch and PyAV and that only decode (threaded), so the pipeline's own share is visible.

``preprocess_on=device``: the run's data path (ClipReader decoding uint8 clips, the preprocess stage
resizing them on the device: the CPU here, CUDA too when available) against bare decode at 1080p, and
its peak RSS. ``workers``: the reader decoding several videos at once (workers=1 vs N) over several
clips, as a ratio to workers=1 measured in the same test; and peak RSS with two 1080p videos open.
Run: pytest benchmarks/bench_data.py --benchmark-only -s
(env: VIDTOK_BENCH_VIDEOS=folder of the clips, VIDTOK_BENCH_THREADS=torch threads, VIDTOK_BENCH_WORKERS=conversion
threads per video (default: a run's, 4 for float clips and 16 for uint8 ones, at most the cores),
VIDTOK_BENCH_READERS=reader workers N, default max(2, the run's default))
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import av
import pytest
import torch

from vidtok_bench.config import default_reader_workers
from vidtok_bench.data import Preprocess
from vidtok_bench.registry import create_dataset
from vidtok_bench.stages.preprocess import PreprocessStage, clip_frames_for
from vidtok_bench.stages.reader import ClipReader
from vidtok_bench.video.decode import decode_clips, default_workers

VIDEOS = Path(os.environ.get("VIDTOK_BENCH_VIDEOS") or Path(__file__).resolve().parents[1].parent / "shared" / "videos")
FILES = ["smpte_bars_1920x1080.mp4", "squirrel_1280x720.mp4"]
PP = Preprocess(fps=30, sampling="stride", size=256, crop="center", resize="bilinear_antialias", clip_len=17)
# torch intra-op threads: 1 by default, the pipeline parallelises over frames instead
THREADS = int(os.environ.get("VIDTOK_BENCH_THREADS", 1))
WORKERS = int(os.environ.get("VIDTOK_BENCH_WORKERS", default_workers()))  # resize threads of the float pipeline


def conversion_threads(clip_frames: str) -> int:
    """Threads converting one video's frames: VIDTOK_BENCH_WORKERS, else what a run uses for these clips
    (16 for uint8 clips on a 16-core host; the second H100 check timed the data path with the float
    pipeline's 4 by mistake, so its 0.18x understated what a run gets)."""
    return int(os.environ.get("VIDTOK_BENCH_WORKERS") or default_workers(clip_frames))
READERS = int(os.environ.get("VIDTOK_BENCH_READERS", max(2, default_reader_workers())))  # videos at once
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
MANY = ["squirrel_1280x720.mp4", "cockatoo_1280x720.mp4", "bigbuckbunny_1280x720.mp4", "tears_of_steel_640x360.mp4",
        "caminandes_640x360.mp4", "sintel_854x480.mp4"]


@pytest.fixture(scope="module", autouse=True)
def _setup():
    if not VIDEOS.is_dir():
        pytest.skip(f"shared videos not found at {VIDEOS}")
    torch.set_num_threads(THREADS)


def bare_decode(path: Path) -> int:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        return sum(1 for _ in c.decode(s))


def decode_rgb(path: Path) -> int:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        return sum(1 for f in c.decode(s) if f.to_ndarray(format="rgb24") is not None)


def pipeline(path: Path) -> int:
    return sum(c.valid for c in decode_clips(path, PP, workers=WORKERS))


def best_fps(fn, path: Path, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        n = fn(path)
        best = min(best, time.perf_counter() - t)
    return n / best


@pytest.mark.parametrize("name", FILES)
def test_pipeline_vs_bare_decode(benchmark, name):
    path = VIDEOS / name
    n = pipeline(path)  # warm-up, and the frame count
    assert n == bare_decode(path)  # 25 fps sources at fps=30 stride keep every frame
    base = best_fps(bare_decode, path)
    rgb = best_fps(decode_rgb, path)
    benchmark.pedantic(pipeline, args=(path,), rounds=3, iterations=1)
    fps = n / benchmark.stats.stats.min
    info = {
        "frames": n, "pipeline_fps": round(fps, 1), "bare_decode_fps": round(base, 1), "decode_rgb_fps": round(rgb, 1),
        "ratio_to_bare_decode": round(fps / base, 3), "ratio_to_decode_rgb": round(fps / rgb, 3),
        "torch_threads": THREADS, "resize_workers": WORKERS, "cpus": os.cpu_count(),
    }
    benchmark.extra_info.update(info)
    print(f"\n{name}: {json.dumps(info)}")


def folder(tmp: Path, names: list[str]) -> Path:
    """A dataset=folder root of symlinks (a name may repeat: videos k_NAME)."""
    tmp.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        (tmp / f"{k:02d}_{name}").symlink_to(VIDEOS / name)
    return tmp


def data_path(root: Path, device: str = "cpu", preprocess_on: str = "device", readers: int = 1,
              prefetch: int = 4, clip_frames: str | None = None) -> Callable[[], int]:
    """What a run does with its data, without a model, as a function to time: ClipReader over dataset=folder
    (``readers`` videos at once), each batch through the preprocess stage on ``device``; it returns the real
    frames delivered. The dataset and the stage are built here, once, as a run builds them before its first
    video: composing the dataset's config costs 80-140 ms on this box, which the timed calls of sessions 8-13
    paid every round (a 251-frame 1080p clip decodes in ~80 ms on the H100 host). ``clip_frames`` given: the
    clips carry that (``CLIP_FRAMES``) and skip the stage (the host's share of a GPU run's data path)."""
    dev = torch.device(device)
    kind = clip_frames or clip_frames_for(preprocess_on, dev)
    ds = create_dataset("folder", root=str(root), workers=conversion_threads(kind), **PP.as_dict())
    ds.clip_frames = kind
    stage = PreprocessStage(ds.preprocess, dev if preprocess_on == "device" else torch.device("cpu"))
    videos = ds.videos()

    def run() -> int:
        n = 0
        for ev in ClipReader(ds, videos, 1, prefetch, readers):
            if ev.kind == "batch":
                if clip_frames is None:
                    assert stage(ev.clips).shape[-2:] == (256, 256)
                n += sum(c.valid for c in ev.clips)
            assert ev.kind != "failed", ev.error
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return n

    return run


def run_data_path(root: Path, device: str = "cpu", preprocess_on: str = "device", readers: int = 1,
                  prefetch: int = 4) -> int:
    """:func:`data_path` built and run once (setup included: for peak memory and warm-ups)."""
    return data_path(root, device, preprocess_on, readers, prefetch)()


@pytest.mark.parametrize("device", DEVICES)
def test_device_preprocessing_vs_bare_decode_1080p(benchmark, tmp_path, device):
    """preprocess_on=device at 1080p: frames/s of the run's data path against bare decode (aim on a GPU host: >= 0.8)."""
    name = "smpte_bars_1920x1080.mp4"
    root = folder(tmp_path / "one", [name])
    run = data_path(root, device)
    n = run()  # warm-up, and the frame count
    assert n == bare_decode(VIDEOS / name)
    base = best_fps(bare_decode, VIDEOS / name)
    benchmark.pedantic(run, rounds=3, iterations=1)
    fps = n / benchmark.stats.stats.min
    info = {"device": device, "frames": n, "data_path_fps": round(fps, 1), "bare_decode_fps": round(base, 1),
            "ratio_to_bare_decode": round(fps / base, 3),
            "conversion_threads": conversion_threads(clip_frames_for("device", torch.device(device))), "torch_threads": THREADS,
            "cpus": os.cpu_count(), "gpu": torch.cuda.get_device_name() if device == "cuda" else None}
    benchmark.extra_info.update(info)
    print(f"\n{name} preprocess_on=device: {json.dumps(info)}")


def test_host_side_of_the_gpu_data_path_1080p(benchmark, tmp_path):
    """What a GPU run's data path asks of the host, measurable without a GPU: the reader delivering a 1080p
    video's YUV clips (decode, hashing, packing; pageable memory here) with no device stage, against bare
    decode. The GPU side (copies, table conversion, resize) is in ``bench_gpu.py``."""
    name = "smpte_bars_1920x1080.mp4"
    run = data_path(folder(tmp_path / "one", [name]), "cpu", clip_frames="yuv")
    n = run()  # warm-up (the conversion table of this layout), and the frame count
    assert n == bare_decode(VIDEOS / name)
    base = best_fps(bare_decode, VIDEOS / name)
    benchmark.pedantic(run, rounds=3, iterations=1)
    fps = n / benchmark.stats.stats.min
    info = {"frames": n, "host_side_fps": round(fps, 1), "bare_decode_fps": round(base, 1),
            "ratio_to_bare_decode": round(fps / base, 3), "conversion_threads": conversion_threads("yuv"),
            "cpus": os.cpu_count()}
    benchmark.extra_info.update(info)
    print(f"\n{name} host side of preprocess_on=device: {json.dumps(info)}")


@pytest.mark.parametrize("preprocess_on", ["cpu", "device"])
def test_reader_workers_scaling(benchmark, tmp_path, preprocess_on):
    """workers=1 vs workers=N over several videos (on CUDA where available for preprocess_on=device)."""
    device = "cuda" if preprocess_on == "device" and torch.cuda.is_available() else "cpu"
    root = folder(tmp_path / "many", MANY)
    runs = {w: data_path(root, device, preprocess_on, w) for w in (1, READERS)}
    n = runs[1]()  # warm-up, and the frame count
    best = {1: float("inf"), READERS: float("inf")}
    for _ in range(2):  # alternating rounds, fastest of each: load on a shared box hits both alike
        for w in best:
            t = time.perf_counter()
            assert runs[w]() == n
            best[w] = min(best[w], time.perf_counter() - t)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the figures are in extra_info
    one, many = n / best[1], n / best[READERS]
    info = {"preprocess_on": preprocess_on, "device": device, "videos": len(MANY), "frames": n,
            "workers_1_fps": round(one, 1), f"workers_{READERS}_fps": round(many, 1), "ratio": round(many / one, 3),
            "conversion_threads": conversion_threads(clip_frames_for(preprocess_on, torch.device(device))),
            "cpus": os.cpu_count()}
    benchmark.extra_info.update(info)
    print(f"\nreader workers 1 vs {READERS}: {json.dumps(info)}")


_RSS = """
import resource, sys, torch, av

def peak():
    # VmHWM is this process's own peak; ru_maxrss also counts the parent's pages copied at fork
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

torch.set_num_threads({threads})
if {run} == "decode":
    c = av.open(sys.argv[1]); s = c.streams.video[0]; s.thread_type = "AUTO"
    assert sum(1 for _ in c.decode(s)) > 0
elif {run} in ("device", "device_x2"):
    sys.path.insert(0, {bench_dir!r})
    import pathlib, tempfile
    from bench_data import folder, run_data_path
    two = {run} == "device_x2"
    root = folder(pathlib.Path(tempfile.mkdtemp()) / "v", [pathlib.Path(sys.argv[1]).name] * (2 if two else 1))
    assert run_data_path(root, "cpu", "device", 2 if two else 1) > 0
elif {run}:
    from vidtok_bench.data import Preprocess
    from vidtok_bench.video.decode import decode_clips
    pp = Preprocess(**{pp!r})
    n = sum(c.valid for c in decode_clips(sys.argv[1], pp, workers={workers}))
    assert n > 0
print(peak())
"""


def peak_rss(run: bool | str, path: Path) -> int:
    code = _RSS.format(threads=THREADS, run=repr(run), pp=PP.as_dict(), workers=WORKERS,
                       bench_dir=str(Path(__file__).resolve().parent))
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_peak_rss_1080p(benchmark):
    path = VIDEOS / "smpte_bars_1920x1080.mp4"
    imports = peak_rss(False, path)
    decode = peak_rss("decode", path)
    total = benchmark.pedantic(peak_rss, args=(True, path), rounds=1, iterations=1)
    info = {"peak_rss_mb": round(total / 2**20, 1), "imports_only_rss_mb": round(imports / 2**20, 1),
            "bare_decode_rss_mb": round(decode / 2**20, 1), "pipeline_share_mb": round((total - imports) / 2**20, 1),
            "resize_workers": WORKERS}
    benchmark.extra_info.update(info)
    print(f"\nsmpte_bars_1920x1080.mp4 peak RSS: {json.dumps(info)}")
    assert total < 1 << 30  # aim: <= 1 GB


def test_peak_rss_1080p_device_preprocessing(benchmark):
    """preprocess_on=device on the CPU: uint8 1080p clips in flight (prefetch 4); one reader worker, then two
    1080p videos at once (workers=2). Aim: <= 1 GB per worker."""
    path = VIDEOS / "smpte_bars_1920x1080.mp4"
    imports = peak_rss(False, path)
    one = benchmark.pedantic(peak_rss, args=("device", path), rounds=1, iterations=1)
    two = peak_rss("device_x2", path)
    mb = lambda b: round(b / 2**20, 1)  # noqa: E731
    info = {"workers_1_peak_rss_mb": mb(one), "workers_2_peak_rss_mb": mb(two), "imports_only_rss_mb": mb(imports),
            "data_path_share_per_worker_mb": mb((two - imports) / 2), "conversion_threads": conversion_threads("uint8")}
    benchmark.extra_info.update(info)
    print(f"\nsmpte_bars_1920x1080.mp4 preprocess_on=device peak RSS: {json.dumps(info)}")
    assert two < 2 << 30 and one - imports < 1 << 30  # aim: <= 1 GB per worker
