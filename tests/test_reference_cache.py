"""Reference (real-clip) FVD features: one cache entry per (dataset, protocol, weights, frame manifest),
computed once under concurrency, written atomically; the runner's key ignores the tokenizer."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vidtok_bench.metrics.fvd import FEATURE_DIM, FVD
from vidtok_bench.weights import manager


class SlowNet:
    """Stands in for I3D: a fixed projection, slow enough for two callers to overlap; counts clips."""

    def __init__(self):
        self.clips = 0
        self.lock = threading.Lock()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.3)
        with self.lock:
            self.clips += x.shape[0]
        g = torch.Generator().manual_seed(0)
        w = torch.randn(x[0].numel(), FEATURE_DIM, generator=g)
        return x.flatten(1) @ w


def _fvd(net: SlowNet) -> FVD:
    m = FVD(device="cpu")
    m._net = net
    m.set_reference_key("data")
    return m


def _clips(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 9, 8, 8, generator=g) * 2 - 1


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr("vidtok_bench.metrics.fvd.preprocess", lambda v, size, max_frames: v.float())


def test_concurrent_processes_compute_each_reference_clip_once():
    real, ids = _clips(3, 0), [f"v{i}#0" for i in range(3)]
    net = SlowNet()
    metrics = [_fvd(net) for _ in range(3)]  # e.g. three sweep jobs on the same data at the same time
    threads = [threading.Thread(target=m.update, args=(real, _clips(3, k + 1), ids)) for k, m in enumerate(metrics)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 3 reference clips once, plus each job's own 3 reconstructions
    assert net.clips == 3 + 3 * 3
    assert sorted(m.reference_cache_hits for m in metrics) == [0, 3, 3]
    for m in metrics[1:]:
        assert np.array_equal(np.stack(m._real), np.stack(metrics[0]._real))


def test_the_frame_manifest_is_part_of_the_key():
    real, ids = _clips(2, 0), ["v0#0", "v1#0"]
    net = SlowNet()
    a = _fvd(net)
    a.note_sources({"v0#0": (0, 1, 2), "v1#0": (0, 1, 2)})
    a.update(real, real, ids)
    b = _fvd(net)
    b.note_sources({"v0#0": (0, 1, 2), "v1#0": (0, 2, 4)})  # v1 sampled at another stride: not the same frames
    b.update(real, real, ids)
    assert b.reference_cache_hits == 1
    assert a.cache_key() == b.cache_key() and a.compute()["details"]["reference_cache_key"] == a.cache_key()


def test_an_interrupted_write_leaves_no_file_a_reader_could_take(monkeypatch, tmp_path):
    real, ids = _clips(1, 0), ["v0#0"]
    m = _fvd(SlowNet())

    def torn(fh, value):
        fh.write(b"\x93NUMPY")  # half a file, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", torn)
    with pytest.raises(KeyboardInterrupt):
        m.update(real, real, ids)
    root = m._cache_dir()
    assert root is not None and list(root.glob("*.npy")) == [] and list(root.glob(".*tmp*")) == []
    monkeypatch.undo()
    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr("vidtok_bench.metrics.fvd.preprocess", lambda v, size, max_frames: v.float())
    again = _fvd(SlowNet())
    again.update(real, real, ids)
    assert again.reference_cache_hits == 0 and len(list(root.glob("*.npy"))) == 1


def test_runner_reference_key_ignores_tokenizer_videos_and_other_metrics(tmp_path):
    from vidtok_bench.config import compose
    from vidtok_bench.runner import Runner

    def key(*overrides: str) -> str:
        return Runner(compose(["dataset=synthetic", "device=cpu", f"output_dir={tmp_path}", *overrides])).reference_key()

    base = key("tokenizer=trilinear_488", "metrics=[psnr,fvd]")
    assert key("tokenizer=identity", "metrics=[fvd]", "limit=1") == base
    assert key("tokenizer=trilinear_488", "metrics=[psnr,fvd]", "shard=1/2") == base
    assert key("tokenizer=trilinear_488", "metrics=[psnr,fvd]", "dataset.size=64") != base
    assert key("tokenizer=trilinear_488", "metrics=[psnr,fvd]", "dataset.num_videos=2") != base
