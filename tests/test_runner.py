"""Runner: clip fitting, per-video records, broken videos, resume, results files."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from vidtok_bench import results as R
from vidtok_bench.data import Clip, Dataset, VideoRef
from vidtok_bench.errors import VideoError
from vidtok_bench.registry import register_dataset
from vidtok_bench.runner import Runner


@register_dataset("_memory")
class MemoryDataset(Dataset):
    """Videos made of seeded noise; ids listed in `broken` raise after `fail_after` clips."""

    def __init__(self, num_videos: int = 3, frames: int = 20, side: int = 32, broken: tuple = (), fail_after: int = 0, **kw):
        super().__init__(**kw)
        self.num_videos, self.frames, self.side = num_videos, frames, side
        self.broken, self.fail_after = tuple(broken), fail_after
        self.calls: list[str] = []

    def videos(self):
        return [VideoRef(f"v{i}", f"/mem/v{i}.mp4") for i in range(self.num_videos)]

    def clips(self, video):
        self.calls.append(video.id)
        g = torch.Generator().manual_seed(int(video.id[1:]))
        full = torch.rand(3, self.frames, self.side, self.side, generator=g) * 2 - 1
        n = self.preprocess.clip_len or self.frames
        for k, start in enumerate(range(0, self.frames, n)):
            if video.id in self.broken and k >= self.fail_after:
                raise VideoError(video.path, "truncated file (decoder error at frame 7)")
            part = full[:, start : start + n]
            valid = part.shape[1]
            if valid < n:
                part = torch.cat([part, part[:, -1:].expand(-1, n - valid, -1, -1)], dim=1)
            yield Clip(video.id, k, part, start, valid)


def make_cfg(tmp_path, tokenizer="identity", metrics=("psnr", "ssim"), **ds):
    from vidtok_bench.config import compose

    cfg = compose([f"tokenizer={tokenizer}", "dataset=_memory", f"output_dir={tmp_path}", "progress=false", "metrics=[" + ",".join(metrics) + "]"])
    cfg["dataset"].update(ds)
    return cfg


def test_identity_run_writes_results(tmp_path):
    cfg = make_cfg(tmp_path)
    res = Runner(cfg).run()
    assert res["schema"] == R.SCHEMA
    # identity: PSNR is -10 log10(1e-8) = 80 dB exactly, SSIM 1
    assert res["metrics"]["psnr"]["value"] == pytest.approx(80.0)
    assert res["metrics"]["ssim"]["value"] == pytest.approx(1.0)
    # 20 frames in 17-frame clips: 2 clips per video, the second with 3 real + 14 repeated frames;
    # the vidtok protocol scores the whole padded clip, as the official evaluator does
    assert res["metrics"]["psnr"]["clips"] == 6
    assert res["metrics"]["psnr"]["frames"] == 6 * 17
    assert res["frames"]["tail_repeated"] == 3 * 14
    assert res["videos"] == {"total": 3, "ok": 3, "failed": [], "resumed": 0}
    loaded = R.load_result(tmp_path)
    assert loaded.fingerprint.model_dump() == res["fingerprint"] and loaded.dump() == res
    pv = pd.read_csv(tmp_path / R.PER_VIDEO_FILE)
    assert list(pv["video"]) == ["v0", "v1", "v2"] and set(pv["status"]) == {"ok"}
    assert R.to_frame([tmp_path]).loc[0, "psnr"] == pytest.approx(80.0)
    for key in ("torch", "python", "git_commit", "packages"):
        assert key in res["environment"]
    assert res["config"]["tokenizer"]["plugin"] == "identity"


def test_tokenbench_protocol_does_not_score_tail(tmp_path):
    from vidtok_bench.config import compose

    cfg = compose(["tokenizer=identity", "dataset=_memory", "protocol=tokenbench", f"output_dir={tmp_path}", "progress=false", "dataset.size=null"])
    res = Runner(cfg).run()
    assert res["metrics"]["psnr"]["frames"] == 3 * 20


def test_trilinear_pads_to_4k_plus_1_and_measures_bpp(tmp_path):
    cfg = make_cfg(tmp_path, tokenizer="trilinear_488")
    cfg["dataset"]["clip_len"] = 15  # not 4k+1: the runner pads to 17 and crops back
    res = Runner(cfg).run()
    assert res["frames"]["tokenizer_padded"] == 2 * 3 * 2
    # latent (3,5,4,4) per 17x32x32 input: 3*5*16*16 bits / (17*32*32)
    assert res["bits_per_pixel"] == pytest.approx(3 * 5 * 4 * 4 * 16 / (17 * 32 * 32))
    assert 5 < res["metrics"]["psnr"]["value"] < 30


def test_broken_video_is_recorded_and_run_goes_on(tmp_path):
    cfg = make_cfg(tmp_path, broken=["v1"], fail_after=1)
    res = Runner(cfg).run()
    assert res["videos"]["ok"] == 2
    (failed,) = res["videos"]["failed"]
    assert failed["video"] == "v1" and "truncated" in failed["error"]
    # the failed video's finished clip does not count
    assert res["metrics"]["psnr"]["clips"] == 4
    pv = pd.read_csv(tmp_path / R.PER_VIDEO_FILE)
    assert pv.set_index("video").loc["v1", "status"] == "failed"


def test_resume_skips_finished_videos(tmp_path):
    cfg = make_cfg(tmp_path)
    Runner(cfg).run()
    log = (tmp_path / R.PER_CLIP_FILE).read_text().splitlines()
    # simulate an interruption after the first video (and a torn write): no results.json yet
    (tmp_path / R.PER_CLIP_FILE).write_text(log[0] + "\n" + log[1][:20])
    (tmp_path / R.RESULTS_FILE).unlink()
    runner = Runner(cfg)
    res = runner.run()
    assert runner.dataset.calls == ["v1", "v2"]
    assert res["videos"]["resumed"] == 1 and res["videos"]["ok"] == 3
    assert res["metrics"]["psnr"]["clips"] == 6
    # the torn fragment was ended before the resumed run appended: every later record has a line of its own
    lines = (tmp_path / R.PER_CLIP_FILE).read_text().splitlines()
    assert lines[1] == log[1][:20] and [json.loads(x)["video"] for x in lines[2:]] == ["v1", "v2"]


def test_resume_refuses_a_different_configuration(tmp_path):
    from vidtok_bench.errors import ConfigError

    Runner(make_cfg(tmp_path)).run()
    (tmp_path / R.PER_CLIP_FILE).write_text("")
    with pytest.raises(ConfigError, match="different configuration"):
        Runner(make_cfg(tmp_path, tokenizer="trilinear_488")).run()


@pytest.mark.parametrize("meta", [None, "xx", "[1, 2]", '{"fingerprint": 3}'])
def test_a_damaged_run_meta_is_named_not_called_a_configuration_change(tmp_path, meta):
    from vidtok_bench.errors import ConfigError

    Runner(make_cfg(tmp_path)).run()
    f = tmp_path / "run_meta.json"
    f.unlink() if meta is None else f.write_text(meta)
    with pytest.raises(ConfigError, match=f"configuration is unknown: {f}") as exc:
        Runner(make_cfg(tmp_path)).run()
    assert "different configuration" not in str(exc.value) and "overwrite=true" in str(exc.value)


def test_nonfinite_outputs_are_flagged(tmp_path, monkeypatch):
    from vidtok_bench.tokenizers.identity import IdentityTokenizer

    monkeypatch.setattr(IdentityTokenizer, "decode", lambda self, z: torch.full_like(z, math.nan))
    res = Runner(make_cfg(tmp_path)).run()
    assert len(res["frames"]["nonfinite_clips"]) == 6


def test_per_clip_log_is_json_lines(tmp_path):
    Runner(make_cfg(tmp_path)).run()
    lines = [json.loads(x) for x in (tmp_path / R.PER_CLIP_FILE).read_text().splitlines()]
    assert [x["video"] for x in lines] == ["v0", "v1", "v2"]
    assert all(len(c["stats"]["psnr"]) == c["frames"] for x in lines for c in x["clips"])


def test_set_metric_forgets_clips_of_a_failed_video(tmp_path):
    """FVD features of a video that fails part-way are dropped (checked on the plugin directly)."""
    from vidtok_bench.metrics.fvd import FVD

    m = FVD(cache_reference=False)
    m._real, m._fake, m._ids = [1, 2, 3], [4, 5, 6], ["a#0", "b#0", "b#1"]
    m.discard(["b#0", "b#1"])
    assert (m._real, m._fake, m._ids) == ([1], [4], ["a#0"])


def test_model_stage_counts_flops_after_the_clips_once_per_shape(monkeypatch) -> None:
    """FLOPs are counted when the totals are read (after the clips, so the meta-device count never runs beside
    them), once per batch shape, times the calls of that shape; one uncountable shape makes both totals None."""
    from vidtok_bench.precision import get_precision
    from vidtok_bench.registry import create_tokenizer
    from vidtok_bench.stages import model as model_stage

    counted: list[tuple[int, ...]] = []

    def fake_meta_flops(tok, shape):
        counted.append(tuple(shape))
        return None if shape[2] == 99 else {"encode": shape[2], "decode": 10 * shape[2]}

    monkeypatch.setattr(model_stage, "meta_flops", fake_meta_flops)
    stage = model_stage.ModelStage(create_tokenizer("identity"), torch.device("cpu"), get_precision("fp32"))
    for t in (4, 4, 6):
        stage(torch.zeros(1, 3, t, 8, 8))
    assert counted == []  # nothing counted while clips run
    assert stage.encode_flops == 2 * 4 + 6 and stage.decode_flops == 10 * (2 * 4 + 6)
    assert sorted(counted) == [(1, 3, 4, 8, 8), (1, 3, 6, 8, 8)]  # each shape once, reads reuse the counts
    stage(torch.zeros(1, 3, 99, 8, 8))
    assert stage.encode_flops is None and stage.decode_flops is None


def test_cpu_runs_hand_free_heap_memory_back_between_the_models_halves_and_batches(monkeypatch, tmp_path) -> None:
    """On CPU runs, freed heap memory goes back to the system after the encoder, after the decoder and after
    each batch's scoring (what kept a 640x272 run's peak above 2 GB); the model's timings leave it out."""
    from vidtok_bench import runner as runner_mod
    from vidtok_bench.precision import get_precision
    from vidtok_bench.registry import create_tokenizer
    from vidtok_bench.stages import model as model_stage

    calls: list[str] = []
    monkeypatch.setattr(model_stage, "release_after_batch", lambda device: calls.append(("model", device.type)))
    monkeypatch.setattr(runner_mod, "release_after_batch", lambda device: calls.append(("scoring", device.type)))
    stage = model_stage.ModelStage(create_tokenizer("identity"), torch.device("cpu"), get_precision("fp32"))
    stage(torch.zeros(1, 3, 4, 8, 8))
    assert calls == [("model", "cpu"), ("model", "cpu")]
    calls.clear()
    Runner(make_cfg(tmp_path)).run()
    assert calls.count(("scoring", "cpu")) >= 2 and calls.count(("model", "cpu")) == 2 * calls.count(("scoring", "cpu"))
