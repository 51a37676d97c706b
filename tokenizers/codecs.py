"""Classical codecs (H.264, HEVC, AV1, VP9 through PyAV/FFmpeg) as tokenizers: the rate
baseline a learned tokenizer should beat at equal bits per pixel.

Each clip is quantised to uint8 RGB, converted to yuv420p (BT.601, limited range, swscale
defaults; the decoder output goes back with the same matrix) and encoded in memory with a
bare codec context — no container. **Bits counted** = the summed sizes of the encoded
video-stream packets (the elementary stream: for H.264/HEVC Annex-B NAL units including
the in-band parameter sets, for AV1 the OBUs including the sequence header); there is no
container overhead to exclude. The whole clip is one GOP (one keyframe, then predicted
frames), encoded with one thread so the bitstream is reproducible. Frames are at least 16x16; HEVC
needs them wider than 64 pixels (libx265 corrupts its heap on narrower ones, see ``CODECS``).

Rate control (``crf`` or ``bpp``):

* ``crf=X``: constant quality; the rate is whatever the codec spends.
* ``bpp=X`` or ``match=TOKENIZER``: per clip, a bisection over the CRF finds the highest-quality
  setting whose stream fits the clip's budget: ``bpp * T * H * W`` bits, or for ``match`` the bits
  that tokenizer's latent takes for a clip of this shape (``Tokenizer.latent_bits_for``: a causal
  4x8x8 model spends 5 latent frames on 17 frames, 0.0827 bpp at FSQ-262144 where its nominal rate
  is 0.0703), so the codec gets exactly the bits the tokenizer spends. CRF search, not one-pass ABR, because
  ABR rate control on 17-frame clips misses its target by tens of percent and spends the
  bits unevenly; the search never exceeds the budget (unless even the coarsest CRF does, which
  is recorded) and lands within ``tolerance`` below it where the CRF grid allows
  (x264/x265 take fractional CRF; AV1/VP9 only integers, so they can land lower).

The recorded name carries the operating point (``h264_crf23``, ``h264_bpp0.07``,
``h264@vidtok_fsq_causal_488_262144``) so every rate keeps its own row in tables.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from vidtok_bench.errors import ConfigError, check_choice
from vidtok_bench.frames import FrameRule
from vidtok_bench.registry import register_tokenizer
from vidtok_bench.tokenizer import Tokenizer


@dataclass(frozen=True)
class CodecSpec:
    encoder: str
    decoders: tuple[str, ...]
    crf_range: tuple[float, float]
    fractional_crf: bool
    default_preset: str | None
    extra: tuple[tuple[str, str], ...] = ()
    #: the presets the encoder takes (checked when the tokenizer is built, not by the encoder mid-run)
    presets: tuple[str, ...] = ()
    #: the smallest frames (height, width) it encodes correctly
    min_size: tuple[int, int] = (16, 16)


#: libx264 and libx265 name the same presets
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


CODECS: dict[str, CodecSpec] = {
    "h264": CodecSpec("libx264", ("h264",), (0.0, 51.0), True, "medium", presets=X26X_PRESETS),
    # libx265 corrupts its heap on frames up to 64 pixels wide (34-48: the process aborts; 16, 32, 64: another stream
    # each run); every even width from 66 to 160 gave one stream at heights 64, 128 and 256
    "hevc": CodecSpec("libx265", ("hevc",), (0.0, 51.0), True, "medium", (("x265-params", "log-level=error:info=0"),),
                      presets=X26X_PRESETS, min_size=(16, 66)),
    "av1": CodecSpec("libsvtav1", ("libdav1d", "av1"), (1.0, 63.0), False, "8", presets=tuple(map(str, range(-1, 14)))),
    "vp9": CodecSpec("libvpx-vp9", ("libvpx-vp9", "vp9"), (0.0, 63.0), False, None,
                     (("b", "0"), ("deadline", "good"), ("cpu-used", "4"), ("row-mt", "0"))),  # no presets: options
}


@dataclass
class CodecLatent:
    """What ``encode`` returns: one encoded elementary stream per clip."""

    streams: list[list[bytes]]  # per clip, the encoded packets in decode order
    shape: tuple[int, int, int]  # (T, H, W) of every clip
    crf: list[float] = field(default_factory=list)  # CRF used per clip

    @property
    def nbytes(self) -> int:
        return sum(len(p) for s in self.streams for p in s)


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """(3,T,H,W) in [-1,1] -> (T,H,W,3) uint8 (round to nearest)."""
    x = ((video.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).contiguous().numpy()


def encode_clip(frames: np.ndarray, codec: str, crf: float, fps: float = 30.0, preset: str | None = None,
                options: dict[str, str] | None = None, threads: int = 1) -> list[bytes]:
    """Encode (T,H,W,3) uint8 RGB at ``crf``; returns the packets (elementary stream)."""
    import av

    spec = CODECS[codec]
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration at info level
    t, h, w, _ = frames.shape
    ctx = av.CodecContext.create(spec.encoder, "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    rate = Fraction(fps).limit_denominator(1001)
    ctx.time_base = 1 / rate
    ctx.framerate = rate
    ctx.gop_size = max(t, 1)
    ctx.thread_count = int(threads)
    crf_text = f"{crf:.2f}" if spec.fractional_crf else str(int(round(crf)))
    opts = dict(spec.extra)
    opts["crf"] = crf_text
    if preset or spec.default_preset:
        opts["preset"] = str(preset or spec.default_preset)
    opts.update({k: str(v) for k, v in (options or {}).items()})
    ctx.options = opts
    packets: list[bytes] = []
    for i in range(t):
        frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets.extend(bytes(p) for p in ctx.encode(frame))
    packets.extend(bytes(p) for p in ctx.encode(None))
    if codec in _SEI_TYPES:
        packets = [q for q in (strip_sei(p, codec) for p in packets) if q]
    return packets


#: NAL unit types of SEI messages: encoders put their version/settings string there
#: (x264: about 600 bytes), which no decoder needs and which would be counted as rate
_SEI_TYPES = {"h264": lambda b: b & 0x1F == 6, "hevc": lambda b: (b >> 1) & 0x3F in (39, 40)}


def strip_sei(packet: bytes, codec: str) -> bytes:
    """Drop SEI NAL units from an Annex-B packet (they carry no picture data)."""
    is_sei = _SEI_TYPES[codec]
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", packet)]
    if not starts:
        return packet
    out = bytearray()  # bytes before the first start code are only its leading zero
    for i, st in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(packet)
        nal = packet[st + 3 : end]
        if i + 1 < len(starts) and nal.endswith(b"\x00"):
            nal = nal[:-1]  # the zero byte of the next 4-byte start code
        if nal and not is_sei(nal[0]):
            out += b"\x00\x00\x00\x01" + nal
    return bytes(out)


def decode_clip(packets: list[bytes], codec: str, shape: tuple[int, int, int]) -> np.ndarray:
    """Decode an elementary stream back to (T,H,W,3) uint8 RGB."""
    import av

    spec = CODECS[codec]
    ctx = None
    for name in spec.decoders:
        try:
            ctx = av.CodecContext.create(name, "r")
            break
        except Exception:  # decoder not in this FFmpeg build
            continue
    if ctx is None:
        raise ConfigError(f"no decoder for {codec} in this PyAV build (tried {', '.join(spec.decoders)})")
    ctx.thread_count = 1
    out: list[np.ndarray] = []
    for data in packets:
        for frame in ctx.decode(av.Packet(data)):
            out.append(frame.to_ndarray(format="rgb24"))
    for frame in ctx.decode(None):
        out.append(frame.to_ndarray(format="rgb24"))
    t, h, w = shape
    if len(out) != t:
        raise RuntimeError(f"{codec}: decoded {len(out)} frames, expected {t}")
    return np.stack(out)


def matched_tokenizer(name: str) -> Tokenizer:
    """The named tokenizer whose rate ``match=`` takes (its ``latent_bits_for`` each clip).

    Built from the tokenizer's constructor; plugins in this project load weights lazily, so
    this does not download anything.
    """
    from vidtok_bench.registry import create_tokenizer

    tok = create_tokenizer(name)
    if isinstance(tok, CodecTokenizer):
        raise ConfigError(f"tokenizer.match={name}: matching a codec to another codec is not meaningful; name a learned tokenizer")
    bpp = float(tok.nominal_bits_per_pixel())
    if not (bpp > 0 and math.isfinite(bpp)):
        raise ConfigError(f"tokenizer.match={name}: it reports no usable nominal bits per pixel ({bpp})")
    return tok


@register_tokenizer("codec")
class CodecTokenizer(Tokenizer):
    """A classical codec at a constant CRF or at a target bits per pixel."""

    causal = False
    frame_rule = FrameRule()
    spatial_multiple = 2  # yuv420p
    latent_channels = 3

    def __init__(self, codec: str = "h264", crf: float | None = None, bpp: float | None = None, match: str | None = None,
                 preset: str | None = None, fps: float | None = None, options: dict[str, Any] | None = None, threads: int = 1,
                 tolerance: float = 0.05, max_iter: int = 12, **kw: Any):
        super().__init__(**kw)
        check_choice(f"tokenizer '{self.name}': codec", codec, CODECS)
        chosen = [k for k, v in (("crf", crf), ("bpp", bpp), ("match", match)) if v is not None]
        if len(chosen) > 1:
            raise ConfigError(f"tokenizer '{self.name}': set only one of crf, bpp, match (got {', '.join(chosen)})")
        self.codec, self.spec = codec, CODECS[codec]
        self.min_frame_size = self.spec.min_size
        if preset is not None and str(preset) not in self.spec.presets:
            takes = f"one of {', '.join(self.spec.presets)}" if self.spec.presets else "no preset (set options instead)"
            raise ConfigError(f"tokenizer '{self.name}': preset={preset!r}: {self.spec.encoder} takes {takes}")
        self.match = match
        self.matched = None if match is None else matched_tokenizer(str(match))
        if bpp is not None and not float(bpp) > 0:
            raise ConfigError(f"tokenizer '{self.name}': bpp={bpp} must be > 0")
        lo, hi = self.spec.crf_range
        if crf is None and bpp is None and match is None:
            crf = {"h264": 23.0, "hevc": 28.0}.get(codec, 35.0)  # each encoder's own default
        if crf is not None and not lo <= float(crf) <= hi:
            raise ConfigError(f"tokenizer '{self.name}': crf={crf} is outside {codec}'s range {lo:g}..{hi:g}")
        self.crf = None if crf is None else float(crf)
        self.target_bpp = None if bpp is None else float(bpp)
        # fps=None follows the clips' frame rate (set by the runner from the protocol); 30 without one
        if fps is not None and not float(fps) > 0:
            raise ConfigError(f"tokenizer '{self.name}': fps={fps} must be > 0 (or null: the clips' rate)")
        self.preset, self.fixed_fps, self.threads = preset, (None if fps is None else float(fps)), int(threads)
        self.options = {str(k): str(v) for k, v in (options or {}).items()}
        self.tolerance, self.max_iter = float(tolerance), int(max_iter)
        # distinct names per operating point, so tables keep one row per rate
        if self.match is not None:
            self.name = f"{self.name}@{self.match}"
        elif self.target_bpp is not None:
            self.name = f"{self.name}_bpp{self.target_bpp:g}"
        else:
            self.name = f"{self.name}_crf{self.crf:g}"
        self.preferred_clip_len = 17

    @property
    def fps(self) -> float:
        """Frame rate given to the encoder's rate control: fixed by config, else the clips' own."""
        return self.fixed_fps or self.frame_rate or 30.0

    @property
    def family(self) -> str:
        preset = self.preset or self.spec.default_preset
        return self.codec if preset == self.spec.default_preset else f"{self.codec} {preset}"

    # ------------------------------------------------------------------ rate control
    def _encode(self, frames: np.ndarray, crf: float) -> list[bytes]:
        return encode_clip(frames, self.codec, crf, fps=self.fps, preset=self.preset, options=self.options, threads=self.threads)

    def budget_bits(self, frames: int, height: int, width: int) -> float | None:
        """The bits a clip may take: the matched tokenizer's latent for this shape, ``bpp*T*H*W``, or None (CRF)."""
        if self.matched is not None:
            return self.matched.latent_bits_for(frames, height, width)
        return None if self.target_bpp is None else self.target_bpp * frames * height * width

    def _encode_to_budget(self, frames: np.ndarray, budget: float) -> tuple[list[bytes], float]:
        """Highest quality (lowest CRF) whose stream fits ``budget`` bits, by bisection."""
        lo, hi = self.spec.crf_range
        size = lambda pk: 8 * sum(len(p) for p in pk)  # noqa: E731
        best = self._encode(frames, hi)
        best_crf = hi
        if size(best) > budget:
            return best, hi  # even the coarsest setting overshoots; recorded via bits
        step = 0.25 if self.spec.fractional_crf else 1.0
        for _ in range(self.max_iter):  # invariant: crf=hi fits the budget
            if size(best) >= budget * (1 - self.tolerance) or hi - lo <= step:
                break
            mid = (lo + hi) / 2
            mid = round(mid / step) * step
            if mid >= hi or mid <= lo:
                break
            pk = self._encode(frames, mid)
            if size(pk) <= budget:
                hi, best, best_crf = mid, pk, mid
            else:
                lo = mid
        return best, best_crf

    # ------------------------------------------------------------------ core API
    def encode(self, video: torch.Tensor) -> CodecLatent:
        self.check_input(video)
        t, h, w = video.shape[2:]
        budget = self.budget_bits(t, h, w)
        streams, crfs = [], []
        for clip in video:
            frames = to_uint8_frames(clip)
            if budget is None:
                pk, crf = self._encode(frames, self.crf), self.crf
            else:
                pk, crf = self._encode_to_budget(frames, budget)
            streams.append(pk)
            crfs.append(float(crf))
        return CodecLatent(streams, (int(t), int(h), int(w)), crfs)

    def decode(self, latent: CodecLatent) -> torch.Tensor:
        clips = [torch.from_numpy(decode_clip(s, self.codec, latent.shape)) for s in latent.streams]
        x = torch.stack(clips).permute(0, 4, 1, 2, 3).float()  # (B,3,T,H,W)
        return (x / 127.5 - 1).to(self.device)

    # ------------------------------------------------------------------ rate
    def latent_bits(self, latent: CodecLatent) -> float:
        """Actual encoded bits: 8 x the bytes of every packet of every clip."""
        return float(8 * latent.nbytes)

    def nominal_bits_per_pixel(self) -> float:
        """The target bpp, the matched tokenizer's nominal rate, or NaN (constant CRF: the rate depends on the content)."""
        if self.matched is not None:
            return self.matched.nominal_bits_per_pixel()
        return self.target_bpp if self.target_bpp is not None else math.nan

    def latent_bits_for(self, frames: int, height: int, width: int) -> float:
        """NaN: a codec's stream size depends on the content (its budget is :meth:`budget_bits`)."""
        return math.nan

    def info(self, weights: bool = True) -> dict[str, Any]:
        out = super().info(weights)
        nominal = self.nominal_bits_per_pixel()
        out.update({
            "codec": self.codec,
            "encoder": self.spec.encoder,
            "rate_control": ("crf_search_to_match" if self.matched is not None
                             else "crf" if self.target_bpp is None else "crf_search_to_bpp"),
            "crf": self.crf,
            "target_bits_per_pixel": self.target_bpp,
            "match": self.match,
            # match: each clip's budget is the named tokenizer's latent bits for that clip's shape
            "match_budget": None if self.matched is None else "latent_bits_for(T, H, W) of the matched tokenizer",
            "nominal_bits_per_pixel": None if math.isnan(nominal) else nominal,
            "preset": self.preset or self.spec.default_preset,
            "pix_fmt": "yuv420p",
            "fps": self.fps,
            "bits_counted": "encoded video-stream packet bytes x 8 (no container)",
        })
        return out
