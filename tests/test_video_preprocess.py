"""preprocess_on=device: one preprocessing definition for the CPU pipeline and the device stage.

On the CPU the uint8-clip path (decode without resize -> PreprocessStage) must give exactly
today's clips (torch.equal), on real videos and arbitrary small frames; on CUDA within 1e-5.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidtok_bench.data import Preprocess
from vidtok_bench.errors import ConfigError, VideoError
from vidtok_bench.stages.preprocess import PreprocessStage, clip_frames_for
from vidtok_bench.video.clips import cut_clips
from vidtok_bench.video.decode import decode_clips
from vidtok_bench.video.resize import FrameResizer, preprocess_frames, to_signed

CUDA = torch.cuda.is_available()


def per_frame_reference(u8: torch.Tensor, r: FrameResizer) -> torch.Tensor:
    """Today's CPU pipeline: FrameResizer frame by frame, stacked as a clip, to [-1, 1]."""
    return to_signed(torch.stack([r(f) for f in u8], dim=1))


def resizer_cases(min_side: int):
    """(size, crop, filter) combinations valid for frames at least ``min_side`` on each side."""
    sizes = st.one_of(st.none(), st.integers(1, 48))
    return st.tuples(sizes, st.sampled_from(["center", "none"]),
                     st.sampled_from(["bilinear_antialias", "bicubic_antialias", "none"])).filter(
        lambda c: not (c[2] == "none" and c[1] == "center" and c[0] is not None and c[0] > min_side))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(1, 4), h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_preprocess_frames_equals_the_per_frame_pipeline_on_cpu(data, n, h, w, seed):
    size, crop, filt = data.draw(resizer_cases(min(h, w)))
    r = FrameResizer(size, crop, filt)
    u8 = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8))
    want = per_frame_reference(u8, r)
    got = preprocess_frames(u8, r)
    assert got.dtype == torch.float32 and got.shape == (3, n, *r.output_size(h, w))
    assert torch.equal(got, want)
    # frames are independent: a batch through interpolate equals its frames one at a time, bit for bit,
    # so chunking (what the GPU path does) changes no value
    assert torch.equal(preprocess_frames(u8, r, chunk=n), want)
    assert float(got.min()) >= -1.0 and float(got.max()) <= 1.0


def test_preprocess_frames_refuses_other_layouts():
    r = FrameResizer(8)
    with pytest.raises(TypeError, match=r"uint8 \(N, H, W, 3\)"):
        preprocess_frames(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), r)
    with pytest.raises(TypeError, match="uint8"):
        preprocess_frames(torch.zeros(2, 16, 16, 3), r)
    with pytest.raises(VideoError, match="smaller than the crop"):
        preprocess_frames(torch.zeros(1, 8, 16, 3, dtype=torch.uint8), FrameResizer(12, "center", "none"))


#: (video, Preprocess): several sizes, crops and filters, native size, resize=none, an odd source size
REAL_CASES = [
    ("sintel_854x480.mp4", Preprocess(size=256, clip_len=8, max_frames=20)),  # 20 = 8 + 8 + 4 (tail repeated)
    ("tears_of_steel_640x360.mp4", Preprocess(size=128, resize="bicubic_antialias", clip_len=5, max_frames=12)),
    ("kinetics_arm_wrestling_340x256.mp4", Preprocess(size=200, crop="none", clip_len=4, max_frames=9)),
    ("cockatoo_1280x720.mp4", Preprocess(size=240, resize="none", clip_len=3, max_frames=7, tail="drop")),
    ("vidtok_example_256x256.mp4", Preprocess(size=256, clip_len=6, max_frames=10)),  # native size: no resize
    ("caminandes_640x360.mp4", Preprocess(size=None, fps=12, clip_len=4, max_frames=8)),  # size=native
    ("squirrel_1280x720.mp4", Preprocess(size=96, sampling="timestamps", fps=10, clip_len=4, clip_stride=3,
                                         max_frames=9)),
]


def _uint8_clips_through_stage(path, pp, device, clip_frames="uint8"):
    stage = PreprocessStage(pp, device)
    for clip in decode_clips(path, pp, workers=2, clip_frames=clip_frames):
        # every shared video is 8-bit 4:2:0 of even size: its yuv clips carry packed planes and their table
        packed = clip_frames.startswith("yuv")
        assert clip.frames.dtype == torch.uint8 and clip.frames.shape[0] == (1 if packed else 3)
        assert (clip.yuv is not None) == packed
        yield clip, stage([clip])[0]


@pytest.mark.parametrize("clip_frames", ["uint8", "yuv"])
@pytest.mark.parametrize("name,pp", REAL_CASES, ids=[c[0].split("_")[0] for c in REAL_CASES])
def test_device_path_on_cpu_equals_todays_clips_on_real_videos(shared_videos, name, pp, clip_frames):
    path = shared_videos / name
    ref = list(decode_clips(path, pp, workers=2))
    got = list(_uint8_clips_through_stage(path, pp, "cpu", clip_frames))
    assert len(got) == len(ref) > 0
    for want, (clip, x) in zip(ref, got):
        assert torch.equal(x, want.frames), f"{name} clip {want.index}"
        assert x.is_contiguous() and x.dtype == want.frames.dtype
        # sampling, windows, tail repeat, source frames and the digest are the uint8 clip's own
        assert (clip.index, clip.start, clip.valid, clip.source_indices) == (want.index, want.start, want.valid,
                                                                             want.source_indices)
        assert (clip.fps, clip.source_fps, clip.source_size) == (want.fps, want.source_fps, want.source_size)
        assert clip.video_checksum == want.video_checksum
    assert ref[-1].video_checksum is not None


def test_batched_clips_equal_stacked_clips(shared_videos):
    pp = Preprocess(size=64, clip_len=4, max_frames=12)
    path = shared_videos / "tears_of_steel_640x360.mp4"
    ref = torch.stack([c.frames for c in decode_clips(path, pp, workers=1)])
    clips = list(decode_clips(path, pp, workers=1, clip_frames="uint8"))
    got = PreprocessStage(pp, "cpu")(clips)
    assert got.shape == ref.shape == (3, 3, 4, 64, 64) and torch.equal(got, ref)
    # float clips (a dataset that ignores clip_frames) are only stacked; one clip is a view, not a copy
    assert torch.equal(PreprocessStage(pp, "cpu")(list(decode_clips(path, pp, workers=1))), ref)
    one = list(decode_clips(path, pp, workers=1))[:1]
    got = PreprocessStage(pp, "cpu")(one)
    assert torch.equal(got, ref[:1]) and got.untyped_storage().data_ptr() == one[0].frames.untyped_storage().data_ptr()


def test_uint8_clips_repeat_the_tail_and_hash_like_float_clips():
    g = torch.Generator().manual_seed(0)
    frames = [torch.randint(0, 256, (6, 10, 3), generator=g, dtype=torch.uint8) for _ in range(7)]
    r = FrameResizer(4)
    from vidtok_bench.video.clips import SampledFrame

    u8 = list(cut_clips([SampledFrame(i, f, f.numpy()) for i, f in enumerate(frames)], 3))
    fl = list(cut_clips([SampledFrame(i, r(f), f.numpy()) for i, f in enumerate(frames)], 3))
    assert [c.valid for c in u8] == [3, 3, 1] and u8[-1].source_indices == (6, 6, 6)
    assert torch.equal(u8[-1].frames[:, 2], u8[-1].frames[:, 0])  # tail repeats the last real frame
    assert u8[-1].video_checksum == fl[-1].video_checksum is not None
    stage = PreprocessStage(Preprocess(size=4), "cpu")
    for a, b in zip(u8, fl):
        assert torch.equal(stage([a])[0], b.frames)


def test_clip_frames_choice():
    assert clip_frames_for("cpu", torch.device("cuda")) == "float"
    assert clip_frames_for("device", torch.device("cpu")) == "uint8"
    assert clip_frames_for("device", torch.device("cuda")) == "yuv_pinned"
    with pytest.raises(ConfigError, match="clip_frames='gpu' is not one of"):
        list(decode_clips("x.mp4", Preprocess(), clip_frames="gpu"))


@pytest.mark.skipif(not CUDA, reason="needs CUDA (runs on a GPU host)")
@pytest.mark.parametrize("clip_frames", ["pinned", "yuv_pinned"])
@pytest.mark.parametrize("name,pp", REAL_CASES, ids=[c[0].split("_")[0] for c in REAL_CASES])
def test_device_path_on_cuda_agrees_with_the_cpu_reference(shared_videos, name, pp, clip_frames):
    path = shared_videos / name
    ref = list(decode_clips(path, pp, workers=2))
    got = list(_uint8_clips_through_stage(path, pp, torch.device("cuda"), clip_frames=clip_frames))
    assert len(got) == len(ref) > 0
    for want, (clip, x) in zip(ref, got):
        assert clip.frames.is_pinned()
        assert x.device.type == "cuda" and x.shape == want.frames.shape
        torch.testing.assert_close(x.cpu(), want.frames, rtol=0, atol=1e-5)
        assert clip.video_checksum == want.video_checksum


@pytest.mark.skipif(not CUDA, reason="needs CUDA (runs on a GPU host)")
@settings(max_examples=30, deadline=None)
@given(data=st.data(), n=st.integers(1, 4), h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_preprocess_frames_on_cuda_agrees_with_cpu(data, n, h, w, seed):
    size, crop, filt = data.draw(resizer_cases(min(h, w)))
    r = FrameResizer(size, crop, filt)
    u8 = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8))
    torch.testing.assert_close(preprocess_frames(u8.cuda(), r).cpu(), preprocess_frames(u8, r), rtol=0, atol=1e-5)


@pytest.mark.parametrize("tail,read", [("repeat", 5), ("drop", 8)])
def test_a_clip_leaves_once_it_cannot_be_the_last(tail, read):
    """Host memory: with tail=repeat a clip goes as soon as one more frame arrives (it cannot be the video's
    last then), not when the next clip is cut; only tail=drop must wait for that."""
    from vidtok_bench.video.clips import SampledFrame

    seen = []

    def frames():
        for i in range(10):
            seen.append(i)
            yield SampledFrame(i, torch.zeros(3, 2, 2), np.full((2, 2, 3), i, np.uint8))

    it = cut_clips(frames(), 4, tail=tail)
    first = next(it)
    assert first.index == 0 and first.video_checksum is None and len(seen) == read
    rest = list(it)
    assert rest[-1].video_checksum is not None and all(c.video_checksum is None for c in rest[:-1])


@pytest.mark.parametrize("filt", ["bilinear_antialias", "bicubic_antialias"])
@pytest.mark.parametrize("h,w,size", [(6, 2, 1), (11, 3, 1), (40, 5, 1)])
def test_a_one_pixel_wide_output_matches_the_contiguous_reference(h, w, size, filt):
    """torch's channels-last antialiased interpolate gives other values when the output is 1 pixel wide (hypothesis
    found it: 6x2 frames, size=1); the frames' channels-last views must still give torchvision's (NCHW) values."""
    import torch.nn.functional as F

    r = FrameResizer(size, "none", filt)
    u8 = torch.from_numpy(np.random.default_rng(h * w).integers(0, 256, (2, h, w, 3), dtype=np.uint8))
    x = u8.permute(0, 3, 1, 2).float().div(255.0).contiguous()  # what torchvision's Resize gets: (N, C, H, W)
    want = F.interpolate(x, size=r.output_size(h, w), mode=filt.split("_")[0], align_corners=False, antialias=True)
    if filt == "bicubic_antialias":
        want = want.clamp(0, 1)
    assert r.output_size(h, w)[1] == 1
    assert torch.allclose(r(u8[0]), want[0], atol=1e-6)
    assert torch.allclose(preprocess_frames(u8, r), want.permute(1, 0, 2, 3) * 2 - 1, atol=1e-6)
