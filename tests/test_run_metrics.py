"""The issue-13 metrics through real runs (dists, flicker, tlpips, codebook, profile), each checked against
the functional module or a formula written here, computed independently from the run's own clips."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _vidtok_fixtures import FIXTURES, cases, overrides
from _weights_fixture import seeded_cache_with_dists, weights_cache  # noqa: F401

from vidtok_bench.cli import main
from vidtok_bench.config import compose
from vidtok_bench.frames import pad_frames
from vidtok_bench.registry import METRICS
from vidtok_bench.runner import Runner

SMALL = ["dataset=synthetic", "dataset.num_videos=2", "dataset.num_frames=17", "dataset.size=32",
         "dataset.height=32", "dataset.width=32", "progress=false", "device=cpu"]


def _run(tmp_path: Path, *overrides: str):
    runner = Runner(compose([*SMALL, f"output_dir={tmp_path}", *overrides]))
    return runner, runner.run_result()


def _pairs(runner: Runner):
    """(video id, clip index, real (1,3,T,H,W), clamped reconstruction) of every clip, straight from the
    run's dataset and tokenizer (the runner's own code paths are not used)."""
    tok = runner.tokenizer
    for v in runner.dataset.videos():
        for c in runner.dataset.clips(v):
            real = c.frames.unsqueeze(0)
            t = real.shape[2]
            with torch.inference_mode():
                rec = tok.decode(tok.encode(pad_frames(real, tok.frame_rule.fit_up(t))))[:, :, :t].float()
            yield v.id, c.index, real, rec.clamp(-1, 1)


def _per_clip(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "per_clip.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------- declared facts
@pytest.mark.parametrize("name, label, hib, kind", [
    ("dists", "DISTS", False, "frame"), ("flicker", "Flicker PSNR", True, "clip"), ("tlpips", "tLPIPS", False, "clip"),
    ("codebook", "Codebook use", True, "set"), ("profile", "First-frame penalty", False, "set"),
])
def test_new_metrics_are_registered_with_their_facts(name, label, hib, kind):
    info = METRICS.get(name).info
    assert (info.label, info.higher_is_better, info.kind) == (label, hib, kind)


# ----------------------------------------------------------------- dists
@pytest.fixture(scope="module")
def dists_cache(tmp_path_factory) -> Path:
    """vgg16 from ../shared plus DISTS alpha/beta from the installed DISTS-pytorch wheel (no download)."""
    return seeded_cache_with_dists(tmp_path_factory)


def test_dists_run_equals_the_python_api_on_the_same_frames(tmp_path, dists_cache, monkeypatch):
    from vidtok_bench.metrics import DISTS  # the lazily exported Python API

    monkeypatch.setenv("VIDTOK_BENCH_CACHE", str(dists_cache))
    runner, res = _run(tmp_path, "tokenizer=trilinear_488", "metrics=[psnr,dists]", "dataset.num_videos=1")
    net = DISTS(device="cpu")
    frames = lambda v: v[0].transpose(0, 1)  # noqa: E731  (1,3,T,H,W) -> (T,3,H,W)
    want = torch.cat([net(frames(r), frames(f)).double() for _, _, r, f in _pairs(runner)])
    assert res.metrics["dists"].value == pytest.approx(want.mean().item(), rel=1e-6)
    assert 0.01 < res.metrics["dists"].value < 1 and res.metrics["dists"].frames == 17
    stats = [x for rec in _per_clip(tmp_path) for c in rec["clips"] for x in c["stats"]["dists"]]
    # the run's frames-per-call batches differ from this one call of 17: float32 GEMMs block them differently, and
    # F(4x4) Winograd's intermediate terms (coefficients up to 8) carry that rounding to ~1e-6 of the score
    np.testing.assert_allclose(stats, want.numpy(), rtol=5e-6)
    assert res.metrics["dists"].spec["weights_sha256"]["dists"] and res.metrics["dists"].info.label == "DISTS"


# ----------------------------------------------------------------- flicker and tLPIPS
def _static_video(monkeypatch):
    """Every synthetic frame is frame 0 mapped to 64..191: a static video well inside [-1, 1]."""
    from vidtok_bench.datasets.synthetic import SyntheticVideo

    orig = SyntheticVideo.frame
    monkeypatch.setattr(SyntheticVideo, "frame", lambda self, i: (64 + orig(self, 0) // 2).astype(np.uint8))


def _brightness(monkeypatch, alternating: bool, d: float = 0.1):
    """The identity tokenizer made to add ``d`` (in [-1,1] units) to every frame, or +-d alternately."""
    from vidtok_bench.tokenizers.identity import IdentityTokenizer

    def decode(self, z):
        t = z.shape[2]
        sign = torch.tensor([(-1.0) ** i if alternating else 1.0 for i in range(t)]).view(1, 1, t, 1, 1)
        return z + d * sign

    monkeypatch.setattr(IdentityTokenizer, "decode", decode)


def _np_lpips_pairs(net, v: torch.Tensor) -> np.ndarray:
    """LPIPS of each consecutive frame pair of (1,3,T,H,W), one call per pair."""
    return np.array([net(v[:, :, t], v[:, :, t - 1]).item() for t in range(1, v.shape[2])])


def test_alternating_brightness_flickers_worse_than_a_constant_offset_of_the_same_psnr(tmp_path, monkeypatch, weights_cache):
    from vidtok_bench.metrics import LPIPS

    _static_video(monkeypatch)
    net = LPIPS("vgg")  # the vidtok protocol's tLPIPS network
    runs = {}
    for alternating in (False, True):
        _brightness(monkeypatch, alternating)
        out = tmp_path / ("alt" if alternating else "const")
        runner, res = _run(out, "tokenizer=identity", "metrics=[psnr,flicker,tlpips]", "dataset.num_videos=1",
                           "dataset.height=48", "dataset.width=48")
        want = np.concatenate([np.abs(_np_lpips_pairs(net, f) - _np_lpips_pairs(net, r)) for *_, r, f in _pairs(runner)])
        assert res.value("tlpips") == pytest.approx(want.mean(), rel=1e-5, abs=1e-7)
        runs[alternating] = res
    const, alt = runs[False], runs[True]
    assert const.value("psnr") == pytest.approx(alt.value("psnr"), abs=1e-6)  # the same per-frame PSNR
    # constant error: the frame differences are exact -> the 1e-8 floor; alternating: each pair's error
    # changes by 2 * 0.05 in [0,1] units -> -10 log10(0.1^2 + 1e-8)
    assert const.value("flicker") == pytest.approx(80.0, abs=1e-3)
    assert alt.value("flicker") == pytest.approx(-10 * math.log10(0.1 ** 2 + 1e-8), abs=1e-3)
    assert alt.value("flicker") < const.value("flicker") - 50
    assert const.metrics["flicker"].frames == 17 and len(_per_clip(tmp_path / "alt")[0]["clips"][0]["stats"]["flicker"]) == 1

    assert const.value("tlpips") < 1e-6 < 1e-3 < alt.value("tlpips")
    spec = alt.metrics["flicker"].spec
    assert "log10" in spec["definition"] and "u_recon[t]-u_recon[t-1]" in spec["definition"]
    assert alt.metrics["tlpips"].spec["network"] == "vgg" and "LPIPS(recon[t], recon[t-1])" in alt.metrics["tlpips"].spec["definition"]


def test_frame_pair_metrics_count_only_the_clips_that_have_a_pair(tmp_path):
    """Tail frames unscored (tokenbench): 18 frames give clips of 17 and 1 frames; the 1-frame clip has no pair, so
    flicker's value, clips and frames are the first clips' alone, while PSNR covers both."""
    runner, res = _run(tmp_path, "tokenizer=trilinear_488", "protocol=tokenbench", "metrics=[psnr,flicker]",
                       "dataset.num_frames=18")
    want = []
    for _, clip, r, f in _pairs(runner):
        if clip == 0:  # clip 1: its one real frame, then repeats of it (not scored)
            d = np.diff((f.double().numpy() - r.double().numpy()) / 2, axis=2)
            want.append(np.mean(-10 * np.log10((d ** 2).mean(axis=(0, 1, 3, 4)) + 1e-8)))
    fl, ps = res.metrics["flicker"], res.metrics["psnr"]
    assert len(want) == 2 and fl.value == pytest.approx(np.mean(want), rel=1e-9)
    assert (fl.clips, fl.frames, fl.videos) == (2, 34, 2)
    assert (ps.clips, ps.frames, ps.videos) == (4, 36, 2)


def test_tlpips_reuses_the_runs_lpips_network(weights_cache):
    from vidtok_bench.metrics.lpips import LPIPSMetric
    from vidtok_bench.metrics.temporal import TLPIPSMetric

    lp, same, other, batch = LPIPSMetric(net="vgg"), TLPIPSMetric(net="vgg"), TLPIPSMetric(net="alex"), TLPIPSMetric(net="vgg", frame_batch=5)
    metrics = {"lpips": lp, "tlpips": same, "t2": other, "t3": batch}
    for m in metrics.values():
        m.bind(None, metrics)
    assert same.model is lp.model and other.model is not lp.model
    assert same._shared is lp and other._shared is None and batch._shared is None  # another batch: its own pass
    assert lp.with_consecutive


@pytest.mark.parametrize("order", [("lpips", "tlpips"), ("tlpips", "lpips")])
def test_lpips_and_tlpips_share_one_backbone_pass(weights_cache, monkeypatch, order):
    """With ``lpips`` and ``tlpips`` on the same network, each frame goes through the backbone once for both (not
    once per metric), in either order, and both give exactly the values each gives alone. VGG on CPUs: the banded
    first slice; chunks of 3 frames over 2 clips of 5: a chunk across the clip boundary, features carried."""
    from vidtok_bench.metrics.lpips import LPIPS, LPIPSMetric
    from vidtok_bench.metrics.temporal import TLPIPSMetric

    frames_through = []
    chunk = LPIPS._chunk

    def counting(self, xs, *args):
        frames_through.append(sum(x.shape[0] for x in xs))
        return chunk(self, xs, *args)

    monkeypatch.setattr(LPIPS, "_chunk", counting)
    g = torch.Generator().manual_seed(7)
    real = torch.rand(2, 3, 5, 40, 44, generator=g) * 2 - 1
    fake = (real + 0.2 * torch.randn(real.shape, generator=g)).clamp(-1, 1)

    def scored(names):
        make = {"lpips": LPIPSMetric, "tlpips": TLPIPSMetric}
        metrics = {n: make[n](net="vgg", frame_batch=3) for n in names}
        for m in metrics.values():
            m.bind(None, metrics)
        frames_through.clear()
        return {n: m.clip_stats(real, fake) for n, m in metrics.items()}, sum(frames_through), metrics

    alone = {n: scored([n])[0][n] for n in order}
    assert scored(["lpips"])[1] == scored(["tlpips"])[1] == 2 * 2 * 5  # each alone: every frame of both videos once
    both, through, metrics = scored(order)
    assert through == 2 * 2 * 5  # together: still once
    assert both == alone  # exactly
    assert len(both["lpips"][0]) == 5 and len(both["tlpips"][0]) == 1
    want = [np.abs(_np_lpips_pairs(metrics["lpips"].model, fake[i:i + 1]) - _np_lpips_pairs(metrics["lpips"].model, real[i:i + 1])).mean()
            for i in range(2)]
    np.testing.assert_allclose([v[0] for v in both["tlpips"]], want, rtol=1e-5, atol=1e-7)
    # a batch changed in place is not read from the last pass
    lp = metrics["lpips"]
    before = lp.per_frame(real, fake)
    fake.mul_(0.5)
    assert not torch.equal(lp.per_frame(real, fake), before)


# ----------------------------------------------------------------- codebook
def _fsq_args() -> list[str]:
    ov = overrides(cases()["v10_fsq_causal_488_4096"])
    return [f"tokenizer.checkpoint={FIXTURES / 'v10_fsq_causal_488_4096.ckpt'}",
            *[f"tokenizer.{k}={json.dumps(v).replace(' ', '')}" for k, v in ov.items()]]


def test_codebook_use_of_an_fsq_tokenizer_matches_numpy_counts(tmp_path):
    runner, res = _run(tmp_path, "tokenizer=vidtok_fsq_causal_488_4096", *_fsq_args(), "metrics=[codebook]")
    ids = []
    for *_, real, _ in _pairs(runner):
        with torch.inference_mode():
            ids.append(runner.tokenizer.encode(real).numpy().ravel())
    ids = np.concatenate(ids)
    _, counts = np.unique(ids, return_counts=True)
    p = counts / counts.sum()
    h_bits = float(-(p * np.log2(p)).sum())
    ppt = (2 * 17 * 32 * 32) / ids.size  # 17x32x32 -> 5x4x4 tokens per clip
    m = res.metrics["codebook"]
    assert m.value == pytest.approx(100 * len(counts) / 4096, rel=1e-12) and m.clips == 2
    d = m.details
    assert (d["codebook_size"], d["tokens"], d["used"]) == (4096, ids.size, len(counts))
    assert d["entropy_bits"] == pytest.approx(h_bits, rel=1e-9) and d["perplexity"] == pytest.approx(2 ** h_bits, rel=1e-9)
    assert d["pixels_per_token"] == pytest.approx(ppt) and d["bpp_entropy"] == pytest.approx(h_bits / ppt, rel=1e-9)
    assert d["bpp_nominal"] == pytest.approx(res.bits_per_pixel, rel=1e-12)  # log2(K) per token = the measured rate
    assert d["bpp_entropy"] < d["bpp_nominal"]


def test_continuous_tokenizer_gets_latent_stats_and_no_value(tmp_path):
    runner, res = _run(tmp_path, "tokenizer=trilinear_488", "metrics=[psnr,codebook]")
    lat = np.concatenate([runner.tokenizer.encode(r).double().numpy().transpose(1, 0, 2, 3, 4).reshape(3, -1)
                          for *_, r, _ in _pairs(runner)], axis=1)
    m = res.metrics["codebook"]
    assert m.value is None and "continuous" in m.warning
    st = m.details["latent_stats"]
    assert st["channels"] == 3 and st["n"] == lat.shape[1]
    np.testing.assert_allclose(st["mean"], lat.mean(1), rtol=1e-9)
    np.testing.assert_allclose(st["std"], lat.std(1), rtol=1e-9)


def test_codebook_state_merges_exactly_and_drops_failed_videos():
    class Tok:
        codebook_size, name = 16, "fake"

    g = torch.Generator().manual_seed(0)
    lat = {v: torch.randint(0, 16, (2, 3, 4, 4), generator=g) for v in ("a", "b", "c")}

    def fed(videos, metric=None):
        m = metric or METRICS.get("codebook")()
        for v in videos:
            m.update_latent(lat[v], Tok(), 2 * 1000, [f"{v}#0", f"{v}#1"])
            m.state_dict()  # the runner saves state after each video: it is committed then
        return m

    whole = fed("abc").compute()
    shard = fed("ab")
    shard.merge_state_dict(fed("c").state_dict())
    assert shard.compute() == whole
    with pytest.raises(ValueError, match="two shards"):
        shard.merge_state_dict(fed("c").state_dict())
    broken = fed("ab")
    broken.update_latent(lat["c"], Tok(), 2000, ["c#0", "c#1"])
    broken.discard(["c#0"])  # video c failed part-way: its tokens count nowhere
    assert broken.compute() == fed("ab").compute() != whole
    counts = np.bincount(torch.cat([lat[v].ravel() for v in "abc"]).numpy(), minlength=16)
    assert whole["details"]["used"] == int((counts > 0).sum()) and whole["details"]["tokens"] == counts.sum()


# ----------------------------------------------------------------- profile
def _first_frame_noise(monkeypatch, layout=None, seam=None):
    """Identity tokenizer with error: noise of 0.05 on every frame, 0.3 on frames starting a chunk
    (``layout['t_starts']``, else frame 0), and 0.3 on the pixel rows/columns ``seam``."""
    from vidtok_bench.tokenizers.identity import IdentityTokenizer

    def decode(self, z):
        g = torch.Generator().manual_seed(1)
        noise = torch.randn(z.shape, generator=g) * 0.05
        starts = (layout or {}).get("t_starts") or [0]
        for s in starts:
            if s < z.shape[2]:
                noise[:, :, s] *= 6
        if seam is not None:
            noise[..., seam, :] *= 6
            noise[..., :, seam] *= 6
        return z + noise

    monkeypatch.setattr(IdentityTokenizer, "decode", decode)
    if layout is not None:
        monkeypatch.setattr(IdentityTokenizer, "tile_layout", lambda self, t, h, w: layout)


def _np_psnr(real: torch.Tensor, rec: torch.Tensor) -> np.ndarray:
    r, f = (real.double().numpy() + 1) / 2, (rec.double().numpy() + 1) / 2
    return -10 * np.log10(((r - f) ** 2).mean(axis=(1, 3, 4))[0] + 1e-8)


def test_profile_first_frame_penalty_and_lpips_profile_match_numpy(tmp_path, monkeypatch, weights_cache):
    _first_frame_noise(monkeypatch)
    runner, res = _run(tmp_path, "tokenizer=identity", "metrics=[lpips,profile]", "dataset.num_frames=30")
    per_frame = [(_np_psnr(r, f)) for *_, r, f in _pairs(runner)]  # 17 + 13 frames (tail scored: 17 + 17)
    by_pos: dict[int, list[float]] = {}
    for clip in per_frame:
        for t, v in enumerate(clip):
            by_pos.setdefault(t, []).append(v)
    rest = [v for t, vs in by_pos.items() if t for v in vs]
    m = res.metrics["profile"]
    assert m.value == pytest.approx(np.mean(rest) - np.mean(by_pos[0]), rel=1e-9) and m.value > 10
    d = m.details
    assert d["first_frame_penalty_db"] == m.value and d["worst_position"] == 0
    prof = d["profiles"]["psnr_by_position"]
    np.testing.assert_allclose(prof["means"], [np.mean(by_pos[t]) for t in range(17)], rtol=1e-9)
    assert prof["counts"] == [len(by_pos[t]) for t in range(17)] == [4] * 17
    assert d["boundary_penalty_db"] is None and d["spatial_boundary_penalty_db"] is None
    # the run's per-frame LPIPS (its per-clip records) grouped by position: no second LPIPS pass
    lp: dict[int, list[float]] = {}
    for rec in _per_clip(tmp_path):
        for c in rec["clips"]:
            for t, v in enumerate(c["stats"]["lpips"]):
                lp.setdefault(t, []).append(v)
    np.testing.assert_allclose(d["profiles"]["lpips_by_position"]["means"], [np.mean(lp[t]) for t in range(17)], rtol=1e-12)
    assert d["lpips_first_frame_penalty"] > 0


def _np_seam_distance(n: int, edges: list[int]) -> np.ndarray:
    """Distance of each index to the nearest boundary e (between e-1 and e), straight loops."""
    return np.array([min(min(abs(i - e), abs(i - (e - 1))) for e in edges) for i in range(n)])


def test_chunk_and_tile_seams_are_profiled(tmp_path, monkeypatch):
    layout = {"t_starts": [0, 1, 9], "tile": (16, 16), "overlap": (0, 0)}
    _first_frame_noise(monkeypatch, layout, seam=[15, 16])
    runner, res = _run(tmp_path, "tokenizer=identity", "metrics=[profile]", "dataset.num_videos=1")
    ((_, _, real, rec),) = list(_pairs(runner))
    psnr = _np_psnr(real, rec)
    pos = np.array([0, 0, *range(1, 8), *range(0, 8)])  # chunks [0], [1..8], [9..16]
    bd = _np_seam_distance(17, [1, 9])
    d = res.metrics["profile"].details
    np.testing.assert_allclose(d["profiles"]["psnr_by_position"]["means"], [psnr[pos == k].mean() for k in range(8)], rtol=1e-9)
    assert d["first_frame_penalty_db"] == pytest.approx(psnr[pos > 0].mean() - psnr[pos == 0].mean(), rel=1e-9)
    assert d["boundary_penalty_db"] == pytest.approx(psnr[bd > 0].mean() - psnr[bd == 0].mean(), rel=1e-9)
    assert d["boundary_penalty_db"] > 3
    # spatial: squared error pooled by distance to the tile seam between pixels 15 and 16
    err = (((real.double() - rec.double()) / 2) ** 2).mean(1)[0].numpy()  # (T,H,W) in [0,1] units
    dist = _np_seam_distance(32, [16])
    pix = np.minimum(dist[:, None], dist[None, :])
    at, rest = err[:, pix == 0].mean(), err[:, pix > 0].mean()
    want = -10 * np.log10(rest + 1e-8) + 10 * np.log10(at + 1e-8)
    assert d["spatial_boundary_penalty_db"] == pytest.approx(want, rel=1e-9) and want > 3
    assert d["layout"]["tile"] == [16, 16]


def test_vidtok_v11_tiled_run_records_its_chunk_seams(tmp_path):
    ov = overrides(cases()["v11_kl_causal_488"])
    args = [f"tokenizer.checkpoint={FIXTURES / 'v11_kl_causal_488.ckpt'}",
            *[f"tokenizer.{k}={json.dumps(v).replace(' ', '')}" for k, v in ov.items()]]
    _, res = _run(tmp_path, "tokenizer=vidtok_kl_causal_488_4chn_v1_1", *args, "dataset.num_videos=1",
                  "dataset.num_frames=40", "metrics=[psnr,profile]")
    d = res.metrics["profile"].details
    assert d["layout"] == {"t_chunk": 16}
    # chunks [0] [1..16] [17..32] [33..39]: position 0 four times, 1..6 three times, 7..15 twice
    assert d["profiles"]["psnr_by_position"]["counts"] == [4] + [3] * 6 + [2] * 9
    assert len(d["profiles"]["psnr_by_chunk_boundary_distance"]["counts"]) > 1
    assert math.isfinite(d["boundary_penalty_db"]) and math.isfinite(res.metrics["profile"].value)


def test_profile_plot_draws_every_profile_of_every_run(tmp_path, monkeypatch, capsys):
    _first_frame_noise(monkeypatch, {"t_starts": [0, 1, 9]})
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", "tokenizer=identity", "metrics=[profile]", *SMALL, f"output_dir={a}"]) == 0
    assert main(["run", "tokenizer=trilinear_488", "metrics=[profile]", *SMALL, f"output_dir={b}"]) == 0
    capsys.readouterr()
    out = tmp_path / "plots"
    assert main(["profile-plot", str(a), str(b), "-o", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert "profile_profile_psnr_by_position.png" in files and "profile_profile_psnr_by_position.svg" in files
    assert "profile_profile_psnr_by_chunk_boundary_distance.svg" in files  # only run a has chunks
    svg = (out / "profile_profile_psnr_by_position.svg").read_text()
    assert "identity (a)" in svg and "trilinear_488 (b)" in svg and "PSNR (dB)" in svg
    rows = (out / "profile_points.csv").read_text().splitlines()
    assert rows[0] == "profile,run,path,key,value,count" and len(rows) > 17
    empty = tmp_path / "e"
    assert main(["run", "tokenizer=identity", "metrics=[psnr]", *SMALL, f"output_dir={empty}"]) == 0
    assert main(["profile-plot", str(empty), "-o", str(out)]) == 2
    assert "no error profiles" in capsys.readouterr().err


# ----------------------------------------------------------------- cost
def test_each_metric_records_its_time(tmp_path):
    _, res = _run(tmp_path, "tokenizer=trilinear_488", "metrics=[psnr,flicker,codebook,profile]")
    times = {n: m.time_s for n, m in res.metrics.items()}
    assert all(t is not None and t > 0 for t in times.values()), times
    assert sum(times.values()) < res.run.duration_s


def test_tlpips_metric_equals_the_functional_pair_loop(weights_cache):
    from vidtok_bench.metrics import LPIPS
    from vidtok_bench.metrics.temporal import TLPIPSMetric, tlpips

    g = torch.Generator().manual_seed(3)
    real = torch.rand(2, 3, 7, 32, 40, generator=g) * 2 - 1
    fake = (real + 0.2 * torch.randn(real.shape, generator=g)).clamp(-1, 1)
    m = TLPIPSMetric(net="alex", frame_batch=3)  # chunks of 3 frames overlapping by one
    want = tlpips(real, fake, LPIPS("alex"), frame_batch=5)
    got = m.pairs(real, fake)
    assert got.shape == (2, 6)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.per_frame(real, fake), want.mean(1, keepdim=True), rtol=1e-5, atol=1e-6)  # a clip: its pairs' mean
    assert m.clip_stats(real[:, :, :1], fake[:, :, :1]) == [[], []]  # a 1-frame clip has no pair


def test_tlpips_chunks_are_capped_on_cpus(weights_cache) -> None:
    """On CPUs a tLPIPS backbone call takes at most the image-network pixel cap (VGG at 640x272: ~140 MB per frame
    in slice 1; a whole 17-frame clip at once held ~2.8 GB), ``frame_batch`` elsewhere; the carried features make
    the chunking invisible in the values."""
    from vidtok_bench.metrics.base import CPU_PIXELS
    from vidtok_bench.metrics.temporal import TLPIPSMetric

    m = TLPIPSMetric(device="cpu", net="vgg", frame_batch=32)
    assert m.frames_per_call((272, 640)) == 1 and m.frames_per_call((256, 256)) == CPU_PIXELS // (256 * 256)
    assert m.frames_per_call((16, 16)) == 32
    assert TLPIPSMetric(device="meta", net="vgg", frame_batch=32).frames_per_call((272, 640)) == 32
    g = torch.Generator().manual_seed(5)
    real = torch.rand(1, 3, 5, 260, 260, generator=g) * 2 - 1  # one frame per call at this size
    fake = (real + 0.2 * torch.randn(real.shape, generator=g)).clamp(-1, 1)
    alex = TLPIPSMetric(device="cpu", net="alex", frame_batch=32)
    assert alex.frames_per_call(real.shape[-2:]) == 1
    whole = alex.model.consecutive(fake[0].transpose(0, 1)) - alex.model.consecutive(real[0].transpose(0, 1))
    torch.testing.assert_close(alex.pairs(real, fake)[0], whole.abs().double(), rtol=1e-6, atol=1e-7)


def test_resumed_run_gives_the_uninterrupted_runs_profile_and_codebook(tmp_path, monkeypatch):
    from vidtok_bench.stages.model import ModelStage

    args = ["tokenizer=trilinear_488", "metrics=[psnr,codebook,profile]", "dataset.num_videos=3"]
    _, whole = _run(tmp_path / "whole", *args)
    model_call = ModelStage.__call__

    def interrupted(self, video, fps=None):  # Ctrl-C during the third video (one clip per video)
        if self.clips == 2:
            raise KeyboardInterrupt
        return model_call(self, video, fps)

    monkeypatch.setattr(ModelStage, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "part", *args)
    assert (tmp_path / "part" / "state" / "profile.pt").is_file()
    monkeypatch.setattr(ModelStage, "__call__", model_call)
    _, resumed = _run(tmp_path / "part", *args)
    assert resumed.videos.resumed == 2
    for m in ("codebook", "profile"):
        a, b = whole.metrics[m], resumed.metrics[m]
        assert (a.value, a.clips, a.details) == (b.value, b.clips, b.details), m
    assert whole.metrics["profile"].details["profiles"]["psnr_by_position"]["counts"] == [3] * 17
