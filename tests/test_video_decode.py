"""End-to-end decode -> sample -> resize -> clips on real files, and broken files."""
from __future__ import annotations

import shutil

import av
import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from vidtok_bench.data import Preprocess
from vidtok_bench.errors import VideoError
from vidtok_bench.video.decode import decode_clips

def test_clips_equal_vidtok_evaluator_preprocessing(shared_videos):
    """First clip == uint8 -> /255 -> v2.Resize(256, antialias) -> CenterCrop(256) -> *2-1 of the decoded frames."""
    path = shared_videos / "sintel_854x480.mp4"
    with av.open(str(path)) as c:
        raw = [f.to_ndarray(format="rgb24") for _, f in zip(range(17), c.decode(video=0))]
    video = torch.from_numpy(np.stack(raw)).permute(0, 3, 1, 2).float() / 255.0
    ref = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(256)])(video) * 2 - 1
    clips = list(decode_clips(path, Preprocess(fps=30, size=256, clip_len=17), video_id="sintel", workers=3))
    assert [(c.start, c.valid) for c in clips] == [(0, 17), (17, 17), (34, 14)]
    assert clips[0].video_id == "sintel" and clips[0].source_fps == 24.0 and clips[0].fps == 24.0
    assert torch.equal(clips[0].frames, ref.permute(1, 0, 2, 3))
    last = clips[-1].frames
    assert torch.equal(last[:, 13], last[:, 16])  # tail repeats the last real frame
    (one,) = list(decode_clips(path, Preprocess(fps=30, size=256, clip_len=17, max_frames=17), workers=1))
    assert torch.equal(one.frames, clips[0].frames)  # threading does not change values


def test_1080p_clip_shapes(shared_videos):
    clips = list(decode_clips(shared_videos / "smpte_bars_1920x1080.mp4", Preprocess(clip_len=16, max_frames=40), workers=2))
    assert [c.frames.shape for c in clips] == [(3, 16, 256, 256)] * 3
    assert [c.valid for c in clips] == [16, 16, 8]


def test_missing_file():
    with pytest.raises(VideoError, match=r"^/nonexistent/x.mp4: file not found$"):
        list(decode_clips("/nonexistent/x.mp4", Preprocess()))


def test_garbage_file(tmp_path):
    p = tmp_path / "garbage.mp4"
    p.write_bytes(b"not a video at all " * 100)
    with pytest.raises(VideoError, match=r"garbage.mp4: cannot open video: Invalid data"):
        list(decode_clips(p, Preprocess()))


def test_unreadable_file(tmp_path):
    p = tmp_path / "locked.mp4"
    p.write_bytes(b"x")
    p.chmod(0)
    try:
        with open(p, "rb"):
            pytest.skip("running as a user that can read mode-000 files")
    except PermissionError:
        pass
    with pytest.raises(VideoError, match="locked.mp4"):
        list(decode_clips(p, Preprocess()))


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(VideoError, match=r"dir.mp4: not a regular file$"):
        list(decode_clips(tmp_path / "dir.mp4", Preprocess()))


@pytest.mark.parametrize("name,frac", [("sintel_854x480.mp4", 0.6), ("kinetics_flipping_pancake_426x240.mkv", 0.5)])
def test_truncated_file(shared_videos, tmp_path, name, frac):
    data = (shared_videos / name).read_bytes()
    p = tmp_path / f"cut_{name}"
    p.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(VideoError, match=f"cut_{name}: (cannot open video|file looks truncated)"):
        list(decode_clips(p, Preprocess(size=32, fps=None)))


def test_complete_mkv_is_not_called_truncated(shared_videos, tmp_path):
    p = tmp_path / "whole.mkv"
    shutil.copy(shared_videos / "kinetics_flipping_pancake_426x240.mkv", p)
    (clip,) = list(decode_clips(p, Preprocess(size=16, fps=None, clip_len=None)))
    assert clip.valid == 310


def test_zero_frame_video(tmp_path):
    p = tmp_path / "empty.y4m"
    p.write_text("YUV4MPEG2 W64 H64 F25:1 Ip A1:1 C420jpeg\n")
    with pytest.raises(VideoError, match=r"empty.y4m: video has no frames"):
        list(decode_clips(p, Preprocess(size=32)))


def test_no_video_stream(tmp_path):
    p = tmp_path / "audio_only.wav"
    with av.open(str(p), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        for pkt in s.encode(f):
            c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    with pytest.raises(VideoError, match="audio_only.wav: no video stream"):
        list(decode_clips(p, Preprocess()))


def test_shorter_than_one_clip(shared_videos):
    path = shared_videos / "sintel_854x480.mp4"  # 48 frames
    with pytest.raises(VideoError, match=r"sintel_854x480.mp4: video has 48 sampled frames, fewer than one clip of 64 \(tail=drop\)"):
        list(decode_clips(path, Preprocess(size=32, clip_len=64, tail="drop")))
    (clip,) = list(decode_clips(path, Preprocess(size=32, clip_len=64, tail="repeat")))
    assert clip.valid == 48 and clip.tail_padded == 16


def test_frames_smaller_than_crop(shared_videos):
    with pytest.raises(VideoError, match=r"kinetics_flipping_pancake_426x240.mkv: frames are 426x240, smaller than the crop 256x256"):
        list(decode_clips(shared_videos / "kinetics_flipping_pancake_426x240.mkv", Preprocess(size=256, resize="none")))


@pytest.mark.parametrize("name", ["smpte_bars_1920x1080.mp4", "caminandes_640x360.mp4"])
def test_shared_reformatter_equals_to_ndarray(shared_videos, name):
    from vidtok_bench.video.decode import av_frame_to_rgb

    with av.open(str(shared_videos / name)) as c:
        for _, f in zip(range(5), c.decode(video=0)):
            assert np.array_equal(av_frame_to_rgb(f), f.to_ndarray(format="rgb24"))


def test_decodes_when_ffmpeg_logging_is_on(shared_videos):
    """With PyAV's Python log callback on, threaded decoding can deadlock; we fall back to one thread."""
    av.logging.set_level(av.logging.ERROR)
    try:
        clips = list(decode_clips(shared_videos / "sintel_854x480.mp4", Preprocess(size=32, clip_len=16)))
    finally:
        av.logging.set_level(None)
    assert [c.valid for c in clips] == [16, 16, 16]
