"""The run's data options: ``preprocess_on`` (resize/crop on the run's device) and ``workers`` (videos
decoded at once). Neither may change a value: on the CPU the device path equals the default run
exactly, and any worker count gives the default's per-video values and frames manifest."""
from __future__ import annotations

import json
import threading
import time

import pytest
import torch

from vidtok_bench.config import compose, default_reader_workers, plan_run
from vidtok_bench.data import Clip, Dataset, VideoRef
from vidtok_bench.errors import ConfigError, VideoError
from vidtok_bench.registry import register_dataset
from vidtok_bench.runner import Runner
from vidtok_bench.stages.reader import ClipReader


def run(out, *overrides):
    cfg = compose(["tokenizer=trilinear_488", f"output_dir={out}", "progress=false", *overrides])
    res = Runner(cfg).run()
    per_clip = [json.loads(line) for line in (out / "per_clip.jsonl").read_text().splitlines()]
    manifest = out / "frames_manifest.json"
    return res, per_clip, manifest.read_bytes() if manifest.exists() else None


def values(res):
    return {k: m["value"] for k, m in res["metrics"].items()}


def clip_stats(per_clip):
    return [(r["video"], r["status"], [(c["clip"], c["stats"]) for c in r["clips"]]) for r in per_clip]


def test_preprocess_on_device_on_cpu_gives_the_default_run_s_values(tmp_path):
    ds = ["dataset.num_videos=2", "dataset.num_frames=21", "dataset.size=64", "device=cpu"]
    a, pa, ma = run(tmp_path / "a", *ds)
    b, pb, mb = run(tmp_path / "b", *ds, "preprocess_on=device")
    assert a["run"]["preprocess_on"] == "cpu" and b["run"]["preprocess_on"] == "device"
    assert values(a) == values(b) and all(v is not None for v in values(a).values())
    assert clip_stats(pa) == clip_stats(pb)
    assert a["fingerprint"] == b["fingerprint"]  # same data, same numbers: preprocess_on is not in it
    assert ma == mb is not None


@pytest.fixture
def video_root(tmp_path, shared_videos):
    """Three real videos (two sizes) and a broken file between them, as dataset=folder sees them."""
    root = tmp_path / "videos"
    root.mkdir()
    for name in ("a_sintel.mp4", "c_tears.mp4", "d_caminandes.mp4"):
        src = {"a": "sintel_854x480.mp4", "c": "tears_of_steel_640x360.mp4", "d": "caminandes_640x360.mp4"}[name[0]]
        (root / name).symlink_to(shared_videos / src)
    (root / "b_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return root


def test_workers_never_change_values_and_a_broken_video_fails_alone(tmp_path, video_root):
    ds = ["dataset=folder", f"dataset.root={video_root}", "dataset.max_frames=10", "dataset.size=64",
          "dataset.clip_len=5", "device=cpu", "dataset.workers=1"]
    a, pa, ma = run(tmp_path / "w1", *ds, "workers=1")
    b, pb, mb = run(tmp_path / "w3", *ds, "workers=3")
    c, pc, mc = run(tmp_path / "w3dev", *ds, "workers=3", "preprocess_on=device")
    assert (a["run"]["workers"], b["run"]["workers"]) == (1, 3)
    for res in (a, b, c):
        assert res["run"]["status"] == "partial"
        assert [f["video"] for f in res["videos"]["failed"]] == ["b_broken.mp4"]
        assert res["videos"]["ok"] == 3
    assert values(a) == values(b) == values(c)
    assert clip_stats(pa) == clip_stats(pb) == clip_stats(pc)
    assert [r["video"] for r in pb] == ["a_sintel.mp4", "b_broken.mp4", "c_tears.mp4", "d_caminandes.mp4"]
    assert ma == mb == mc is not None


@pytest.mark.parametrize("override,message", [
    ("preprocess_on=gpu", "preprocess_on='gpu' is not one of auto, cpu, device"),
    ("workers=0", "workers=0 must be an integer >= 1"),
    ("workers=true", "workers=True must be an integer >= 1"),
])
def test_bad_values_are_one_line_config_errors(override, message):
    cfg = compose([override])
    with pytest.raises(ConfigError) as e:
        plan_run(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_defaults_resolve_in_plan_run():
    plan = plan_run(compose(["device=cpu"]))
    assert plan.preprocess_on == "cpu" and plan.workers == default_reader_workers() >= 1
    assert plan_run(compose(["device=cpu", "preprocess_on=device", "workers=3"])).preprocess_on == "device"
    if torch.cuda.is_available():
        assert plan_run(compose(["device=cuda"])).preprocess_on == "device"


# ----------------------------------------------------------------------------- the reader itself
@register_dataset("_slow")
class SlowDataset(Dataset):
    """Videos whose clips take ``delays[i]`` seconds each; records how many videos are open at once."""

    def __init__(self, delays=(0.05, 0.0, 0.02, 0.0, 0.01, 0.0), clips_per_video=3, broken=(), **kw):
        super().__init__(**kw)
        self.delays, self.n, self.broken = list(delays), clips_per_video, set(broken)
        self.lock = threading.Lock()
        self.open = self.max_open = 0
        self.made = 0  # clips produced so far

    def videos(self):
        return [VideoRef(f"v{i}") for i in range(len(self.delays))]

    def clips(self, video):
        i = int(video.id[1:])
        with self.lock:
            self.open += 1
            self.max_open = max(self.max_open, self.open)
        try:
            for k in range(self.n):
                time.sleep(self.delays[i])
                if i in self.broken and k == 1:
                    raise VideoError(f"/x/{video.id}.mp4", "decoding failed after 4 frames")
                with self.lock:
                    self.made += 1
                yield Clip(video.id, k, torch.full((3, 2, 4, 4), float(i)), 2 * k, 2)
        finally:
            with self.lock:
                self.open -= 1


def _events(reader):
    return [(e.kind, e.video.id, [c.index for c in e.clips], e.error) for e in reader]


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_reader_keeps_dataset_order_whatever_the_workers(workers):
    ds = SlowDataset(broken={2})
    want = _events(ClipReader(ds, ds.videos(), prefetch=1, workers=1))
    ds2 = SlowDataset(broken={2})
    got = _events(ClipReader(ds2, ds2.videos(), prefetch=1, workers=workers))
    assert got == want
    assert ("failed", "v2", [], "/x/v2.mp4: decoding failed after 4 frames") in got
    assert [e[1] for e in got if e[0] != "batch"] == [f"v{i}" for i in range(6)]
    assert 1 < ds2.max_open <= min(workers, 6)  # videos decode in parallel, never more than `workers`


def test_reader_memory_is_bounded_by_workers_and_prefetch():
    ds = SlowDataset(delays=[0.0] * 6, clips_per_video=10)
    reader = ClipReader(ds, ds.videos(), prefetch=2, workers=2)
    it = iter(reader)
    next(it)
    time.sleep(0.5)  # let the workers run ahead as far as they may
    # per open video: prefetch batches queued (the next is not even started); plus the one given out
    assert ds.made == 2 * 2 + 1
    assert ds.max_open <= 2
    rest = list(it)
    assert len(rest) + 1 == 6 * 11


def test_reader_stops_its_threads_when_the_consumer_stops():
    ds = SlowDataset(delays=[0.0] * 6, clips_per_video=50)
    reader = ClipReader(ds, ds.videos(), prefetch=1, workers=3)
    it = iter(reader)
    next(it)
    it.close()
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name.startswith("vidtok-bench-reader")]
    assert ds.open == 0  # every clip generator was closed


def test_reader_queues_at_most_prefetch_bytes(monkeypatch):
    import vidtok_bench.stages.reader as reader_mod

    clip_bytes = 3 * 2 * 4 * 4 * 4  # SlowDataset's float clips
    monkeypatch.setattr(reader_mod, "PREFETCH_BYTES", 2 * clip_bytes)
    ds = SlowDataset(delays=[0.0] * 2, clips_per_video=10)
    it = iter(ClipReader(ds, ds.videos(), prefetch=8, workers=1))
    next(it)
    time.sleep(0.3)
    assert ds.made == 1 + 2  # given out, two queued (the byte cap, not prefetch=8)
    assert len(list(it)) + 1 == 2 * 11


def test_manifest_replay_with_device_preprocessing_and_workers(tmp_path, video_root):
    """dataset=manifest (recorded windows, replay_clips) through the uint8 path and two workers: same values."""
    (video_root / "b_broken.mp4").unlink()
    ds = ["dataset=folder", f"dataset.root={video_root}", "dataset.max_frames=7", "dataset.size=64",
          "dataset.clip_len=4", "device=cpu", "dataset.workers=1"]
    a, pa, ma = run(tmp_path / "rec", *ds, "workers=1")
    (tmp_path / "m.json").write_bytes(ma)
    replay = ["dataset=manifest", f"dataset.manifest={tmp_path / 'm.json'}", f"dataset.root={video_root}", "device=cpu",
              "dataset.size=64"]
    b, pb, mb = run(tmp_path / "rep", *replay, "workers=1")
    c, pc, mc = run(tmp_path / "rep_dev", *replay, "workers=2", "preprocess_on=device")
    assert a["run"]["status"] == b["run"]["status"] == c["run"]["status"] == "complete"
    assert values(a) == values(b) == values(c)
    assert clip_stats(pa) == clip_stats(pb) == clip_stats(pc)
    assert json.loads(mb)["videos"] == json.loads(mc)["videos"] == json.loads(ma)["videos"]
