"""Protocol facts applied once (the vidtok clamp before LPIPS too), one config resolver for the CLI
and the Python API, options rejected the same way for every plugin kind, one precision type."""
from __future__ import annotations

import pytest
import torch

from vidtok_bench import create_dataset, create_tokenizer
from vidtok_bench.config import compose, plan_run, resolve_group
from vidtok_bench.errors import ConfigError
from vidtok_bench.precision import get_precision
from vidtok_bench.runner import Runner


from _weights_fixture import weights_cache  # noqa: F401,E402  (shared weights in a temp cache)


def _overshooting(monkeypatch):
    """The identity tokenizer made to overshoot: reconstructions leave [-1, 1]."""
    from vidtok_bench.tokenizers.identity import IdentityTokenizer

    monkeypatch.setattr(IdentityTokenizer, "decode", lambda self, z: z * 1.5 + 0.2)


def _run(tmp_path, protocol, metrics):
    cfg = compose(["tokenizer=identity", "dataset=synthetic", f"protocol={protocol}", f"output_dir={tmp_path}",
                   "progress=false", "device=cpu", "dataset.num_videos=1", "dataset.num_frames=17",
                   "dataset.height=48", "dataset.width=48", "dataset.size=32", f"metrics=[{','.join(metrics)}]"])
    runner = Runner(cfg)
    return runner, runner.run_result()


def test_vidtok_protocol_clamps_before_every_metric_lpips_included(tmp_path, monkeypatch, weights_cache):
    from vidtok_bench.metrics import LPIPS, psnr

    _overshooting(monkeypatch)
    runner, res = _run(tmp_path, "vidtok", ["psnr", "lpips"])
    assert res.scoring.clamp and res.scoring.tail_frames == "scored"
    (clip,) = list(runner.dataset.clips(runner.dataset.videos()[0]))
    real = clip.frames.unsqueeze(0)
    recon = real * 1.5 + 0.2
    net = LPIPS("vgg")
    frames = lambda v: v[0].permute(1, 0, 2, 3)  # noqa: E731
    clamped = net(frames(real), frames(recon.clamp(-1, 1))).double().mean().item()
    unclamped = net(frames(real), frames(recon)).double().mean().item()
    assert abs(clamped - unclamped) > 1e-3  # the test can tell the two apart
    assert res.value("lpips") == pytest.approx(clamped, abs=1e-6)
    assert res.value("psnr") == pytest.approx(psnr(real, recon.clamp(-1, 1)).mean().item(), abs=1e-9)


def test_tokenbench_protocol_excludes_tail_frames_from_every_metric(tmp_path):
    cfg = compose(["tokenizer=identity", "dataset=synthetic", "protocol=tokenbench", f"output_dir={tmp_path}",
                   "progress=false", "device=cpu", "dataset.num_videos=1", "dataset.num_frames=20", "dataset.fps=30",
                   "dataset.height=32", "dataset.width=32", "dataset.size=32", "dataset.clip_len=17", "metrics=[psnr,ssim]"])
    res = Runner(cfg).run_result()
    assert res.scoring.tail_frames == "excluded"
    assert res.metrics["psnr"].frames == res.metrics["ssim"].frames == 20 and res.frames.tail_repeated == 14


def test_python_api_and_cli_resolve_the_same_dataset(tmp_path, shared_videos):
    root = str(shared_videos / "vidtok_example_256x256.mp4")
    api = create_dataset("folder", root=root, max_frames=20)
    cli = Runner(compose(["dataset=folder", f"dataset.root={root}", "dataset.max_frames=20", "progress=false",
                          f"output_dir={tmp_path}"])).dataset
    assert api.preprocess == cli.preprocess and api.preprocess.fps == 30 and api.preprocess.size == 256
    (va,), (vc,) = api.videos(), cli.videos()
    clips_a, clips_c = list(api.clips(va)), list(cli.clips(vc))
    assert len(clips_a) == len(clips_c) == 2
    assert all(torch.equal(a.frames, c.frames) for a, c in zip(clips_a, clips_c))


def test_named_config_resolves_to_the_same_values_everywhere():
    run = compose(["tokenizer=vidtok_kl_causal_488_16chn", "tokenizer.ch=8"])["tokenizer"]
    assert run == resolve_group("tokenizer", "vidtok_kl_causal_488_16chn", {"ch": 8})
    tok = create_tokenizer("vidtok_kl_causal_488_16chn", ch=8)
    assert tok.arch.ch == 8 and tok.name == "vidtok_kl_causal_488_16chn"


@pytest.mark.parametrize("overrides, words", [
    (["tokenizer=h264", "tokenizer.crff=20"], ["tokenizer", "'crff'", "did you mean 'crf'"]),
    (["dataset=synthetic", "dataset.num_video=2"], ["dataset", "'num_video'", "did you mean 'num_videos'"]),
    (["metrics=[lpips]", "protocol.metric_options.lpips.nett=vgg"], ["metric 'lpips'", "'nett'", "did you mean 'net'"]),
])
def test_unknown_options_are_rejected_the_same_way_for_every_kind(tmp_path, overrides, words):
    with pytest.raises(ConfigError) as exc:
        Runner(compose([*overrides, f"output_dir={tmp_path}", "progress=false"]))
    msg = str(exc.value)
    assert all(w in msg for w in words) and "valid options:" in msg and "\n" not in msg


@pytest.mark.parametrize("key, value, text", [
    ("limit", "-1", "limit=-1 must be an integer >= 0"), ("batch_size", "0", "batch_size=0"),
    ("seed", "abc", "seed='abc'"), ("precision", "fp64", "precision='fp64'"), ("prefetch", "1.5", "prefetch=1.5"),
    ("progress", "maybe", "progress='maybe'"), ("device", "tpu", "device='tpu'"),
])
def test_run_options_are_validated_before_any_work(key, value, text):
    with pytest.raises(ConfigError, match=text.replace("(", r"\(")):
        plan_run(compose([f"{key}={value}"]))


def test_fp32_disables_an_outer_autocast_and_tf32_is_scoped():
    a = torch.randn(8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
        with get_precision("fp32").scope("cpu"):
            assert (a @ a).dtype == torch.float32
    before = torch.backends.cuda.matmul.allow_tf32
    with get_precision("tf32").scope("cpu"):
        assert torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 == before


def test_tokenizer_precision_overrides_the_run_s(tmp_path):
    cfg = compose(["tokenizer=identity", "tokenizer.precision=fp32", "precision=bf16", "progress=false",
                   f"output_dir={tmp_path}", "dataset.num_videos=1", "dataset.num_frames=9", "dataset.size=32",
                   "dataset.height=32", "dataset.width=32"])
    runner = Runner(cfg)
    assert runner.model.precision.name == "fp32"
    assert runner.run_result().run.precision == "fp32"
