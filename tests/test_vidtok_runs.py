"""VidTok through the runner and CLI with the official fixture checkpoints (ch=8, no download)."""
from __future__ import annotations

import json

import pytest

from _vidtok_fixtures import FIXTURES, cases, overrides
from vidtok_bench.cli import main


def _args(case: str) -> list[str]:
    ov = overrides(cases()[case])
    out = [f"tokenizer.checkpoint={FIXTURES / f'{case}.ckpt'}"]
    for k, v in ov.items():
        out.append(f"tokenizer.{k}={json.dumps(v).replace(' ', '')}")
    return out


@pytest.mark.parametrize(
    "name, case, clip_frames",
    [
        # v1.0: independent 17-frame clips, the last one filled by repeating its last frame
        ("vidtok_kl_causal_488_4chn", "v10_kl_causal_488", 17),
        # non-causal: 16-frame clips
        ("vidtok_kl_noncausal_488_4chn", "v10_kl_noncausal_488", 16),
        # v1.1: the whole 40-frame video in the tiled long-video mode, padded to 41 = 4k+1
        ("vidtok_kl_causal_488_4chn_v1_1", "v11_kl_causal_488", 40),
    ],
)
def test_vidtok_run_uses_the_protocols_clip_layout(tmp_path, capsys, name, case, clip_frames):
    code = main(["run", f"tokenizer={name}", *_args(case), "dataset=synthetic", "dataset.num_videos=1", "dataset.num_frames=40",
                 "dataset.size=32", f"output_dir={tmp_path}", "progress=false", "device=cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["videos"]["ok"] == 1
    clips = [json.loads(x) for x in (tmp_path / "per_clip.jsonl").read_text().splitlines()][0]["clips"]
    assert {c["valid"] + c["tail_repeated"] for c in clips} == {clip_frames}
    if name.endswith("v1_1"):
        assert len(clips) == 1 and clips[0]["tokenizer_padded"] == 1
        assert res["tokenizer"]["tiling"] is True and res["dataset"]["preprocess"]["clip_len"] is None
    else:
        assert len(clips) == -(-40 // clip_frames) and res["frames"]["tokenizer_padded"] == 0
    assert res["run"]["sample_posterior"] is False and res["tokenizer"]["latent"] == "posterior_mode"
    assert res["tokenizer"]["weights"]["sha256"] and res["fingerprint"]["config"]
    assert 0 < res["bits_per_pixel"] < 1


def test_fsq_run_counts_bits_from_tokens(tmp_path, capsys):
    code = main(["run", "tokenizer=vidtok_fsq_causal_488_4096", *_args("v10_fsq_causal_488_4096"), "dataset=synthetic",
                 "dataset.num_videos=1", "dataset.num_frames=17", "dataset.size=32", f"output_dir={tmp_path}", "progress=false"])
    assert code == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "results.json").read_text())
    # 17x32x32 -> 5x4x4 tokens of log2(4096) = 12 bits
    assert res["bits_per_pixel"] == pytest.approx(5 * 4 * 4 * 12 / (17 * 32 * 32))
    assert res["tokenizer"]["codebook_size"] == 4096


def test_missing_checkpoint_offline_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    code = main(["run", "tokenizer=vidtok_kl_causal_488_16chn", f"output_dir={tmp_path / 'o'}", "progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "vidtok_kl_causal_488_16chn.ckpt" in err[0] and "tokenizer.checkpoint=" in err[0]


def test_run_records_flops_and_achieved_rate(tmp_path, capsys):
    """results.json counts every encode/decode's FLOPs: 3 clips of 17x32x32, each what count_flops gives for
    one clip (counted independently here, on the tokenizer the run used); rates are FLOPs / model seconds."""
    from vidtok_bench import create_tokenizer
    from vidtok_bench.flops import count_flops

    case = "v10_kl_causal_488"
    code = main(["run", "tokenizer=vidtok_kl_causal_488_4chn", *_args(case), "dataset=synthetic", "dataset.num_videos=1",
                 "dataset.num_frames=40", "dataset.size=32", "batch_size=2", f"output_dir={tmp_path}", "progress=false",
                 "device=cpu"])
    out = capsys.readouterr().out
    assert code == 0
    t = json.loads((tmp_path / "results.json").read_text())["throughput"]
    tok = create_tokenizer("vidtok_kl_causal_488_4chn", checkpoint=str(FIXTURES / f"{case}.ckpt"), **overrides(cases()[case]))
    one = count_flops(tok, (1, 3, 17, 32, 32))
    assert t["clips"] == 3 and t["encode_flops"] == 3 * one["encode"] and t["decode_flops"] == 3 * one["decode"]
    assert t["encode_tflops_per_s"] == pytest.approx(t["encode_flops"] / t["encode_s"] / 1e12)
    assert t["tflops_per_s"] == pytest.approx((t["encode_flops"] + t["decode_flops"]) / (t["encode_s"] + t["decode_s"]) / 1e12)
    assert t["peak_tflops_per_s"] is None and t["mfu"] is None  # no datasheet peak for CPUs
    assert f"{t['tflops_per_s']:.3g} TFLOP/s" in out and "of model time" in out


def test_tokenizers_without_a_meta_copy_record_no_flops(tmp_path, capsys):
    code = main(["run", "tokenizer=trilinear_488", "dataset=synthetic", "dataset.num_videos=1", "dataset.num_frames=17",
                 "dataset.size=32", f"output_dir={tmp_path}", "progress=false"])
    assert code == 0, capsys.readouterr().err
    t = json.loads((tmp_path / "results.json").read_text())["throughput"]
    assert t["encode_flops"] is None and t["tflops_per_s"] is None and t["mfu"] is None and t["encode_s"] > 0


def test_table_shows_the_achieved_rate(tmp_path, capsys):
    case = "v10_kl_causal_488"
    assert main(["run", "tokenizer=vidtok_kl_causal_488_4chn", *_args(case), "dataset=synthetic", "dataset.num_videos=1",
                 "dataset.num_frames=17", "dataset.size=32", f"output_dir={tmp_path}", "progress=false"]) == 0
    t = json.loads((tmp_path / "results.json").read_text())["throughput"]
    capsys.readouterr()
    assert main(["table", str(tmp_path), "--columns", "psnr", "tflops", "mfu", "gflop_per_clip", "--format", "csv"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()[:2]
    cells = dict(zip(header.split(","), row.split(",")))
    # rounded to the columns' precision (1 and 3 decimals)
    assert float(cells["gflop_per_clip"]) == pytest.approx((t["encode_flops"] + t["decode_flops"]) / 1e9, abs=0.05)
    assert float(cells["tflops"]) == pytest.approx(t["tflops_per_s"], abs=5e-4) and cells["mfu"] == ""
    assert main(["table", str(tmp_path), "--columns", "tflops", "gflop_per_clip"]) == 0
    assert "TFLOP/s ↑" in capsys.readouterr().out


def test_posterior_samples_do_not_depend_on_the_split(tmp_path):
    """sample_posterior=true: a video gets the same sample in a shard as in the whole run (each video its own stream)."""
    from vidtok_bench.config import compose
    from vidtok_bench.runner import Runner

    args = ["tokenizer=vidtok_kl_causal_488_4chn", *_args("v10_kl_causal_488"), "tokenizer.sample_posterior=true",
            "dataset=synthetic", "dataset.num_videos=3", "dataset.num_frames=17", "dataset.size=32", "progress=false",
            "device=cpu"]
    Runner(compose([*args, f"output_dir={tmp_path / 'whole'}"])).run_result()
    part = Runner(compose([*args, f"output_dir={tmp_path / 'part'}", "shard=1/2"])).run_result()

    def psnr(run_dir):
        return {r["video"]: r["clips"][0]["stats"]["psnr"] for r in map(json.loads, open(run_dir / "per_clip.jsonl"))}

    assert part.shard.videos and part.shard.videos[0] != "synthetic_000"  # its first video is not the run's first
    got, want = psnr(tmp_path / "part" / "shard-1-of-2"), psnr(tmp_path / "whole")
    assert got == {v: want[v] for v in part.shard.videos}
    assert json.loads((tmp_path / "whole" / "results.json").read_text())["tokenizer"]["latent"] == "posterior_sample"
