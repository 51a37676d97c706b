"""The image metrics against the scores their official implementations publish, on standard image pairs.

pyiqa's sdist on PyPI carries five TID2013 reference/distorted pairs (``ResultsCalibra/ref_dir``,
``dist_dir``) and ``results_official.csv``: the scores the metrics' authors' own code gives on them
(LPIPS v0.1 AlexNet, DISTS, Wang's ``ssim_index.m``, PSNR). :func:`calibrate` scores the same pairs with
this harness's metrics and checks each value against the published one to the digits published
(half a unit of the last digit). The sdist is fetched with pip, pinned by sha256, and kept in the cache;
only the CSV and the ten images are read out of it, never extracted to disk.

    from vidtok_bench.calibration import calibrate, fetch_sdist, read_set
    rows = calibrate(read_set(fetch_sdist()), device="cpu")    # one Row per (metric, image)
"""
from __future__ import annotations

import csv
import io
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import BenchError, WeightsError, check_path, one_line
from .hashing import sha256_file

PACKAGE, VERSION = "pyiqa", "0.1.16"
SDIST = f"pyiqa-{VERSION}.tar.gz"
SDIST_SHA256 = "80fb913302585a774875c224b4f95068ac17bebd88f735876e6f0c3bb0988d34"
ROOT = f"pyiqa-{VERSION}/ResultsCalibra/"
PUBLISHED = ROOT + "results_official.csv"
SOURCE = f"{PACKAGE} {VERSION} sdist (sha256 {SDIST_SHA256[:16]}…), {PUBLISHED}"


def rgb2gray(u: torch.Tensor) -> torch.Tensor:
    """MATLAB ``rgb2gray`` of uint8-valued images in [0,1] (N,3,H,W) -> (N,1,H,W): its exact luma weights,
    rounded half away from zero back to uint8 levels, as ``ssim_index.m`` was fed."""
    levels = (u.double() * 255).round()
    w = torch.tensor([0.298936021293775, 0.587043074451121, 0.114020904255103], dtype=torch.float64, device=u.device)
    return torch.floor(torch.einsum("nchw,c->nhw", levels, w) + 0.5).unsqueeze(1) / 255


def _psnr(ref: torch.Tensor, dist: torch.Tensor, device: str) -> torch.Tensor:
    """PSNR over RGB in [0,1]: the ``vidtok`` variant's per-frame value."""
    from .metrics.psnr import psnr

    return psnr(ref * 2 - 1, dist * 2 - 1)


def _ssim(ref: torch.Tensor, dist: torch.Tensor, device: str) -> torch.Tensor:
    """Wang's ``ssim_index.m`` on MATLAB ``rgb2gray``: the ``vidtok`` variant's SSIM before its pooling step."""
    from .metrics.ssim import gaussian_ssim

    return gaussian_ssim(rgb2gray(ref), rgb2gray(dist))


def _lpips(ref: torch.Tensor, dist: torch.Tensor, device: str) -> torch.Tensor:
    from .metrics.lpips import LPIPS

    return LPIPS("alex", device=device)(dist * 2 - 1, ref * 2 - 1).flatten()


def _dists(ref: torch.Tensor, dist: torch.Tensor, device: str) -> torch.Tensor:
    from .metrics.dists import DISTS

    return DISTS(device=device)(dist * 2 - 1, ref * 2 - 1)


@dataclass(frozen=True)
class Check:
    """One published row of ``results_official.csv`` and how this harness computes it."""

    row: str  # the row's name in results_official.csv
    metric: str  # this harness's metric (its label is read from the metric's own MetricInfo)
    score: Callable[[torch.Tensor, torch.Tensor, str], torch.Tensor]  # (ref, dist) (N,3,H,W) in [0,1], device


CHECKS: tuple[Check, ...] = (
    Check("psnr", "psnr", _psnr),
    Check("ssim", "ssim", _ssim),
    Check("lpips", "lpips", _lpips),  # LPIPS v0.1, net=alex: the published row's network
    Check("dists", "dists", _dists),
)


@dataclass(frozen=True)
class Row:
    metric: str  # the metric's label
    image: str
    published: str  # as published, with its digits
    ours: float

    @property
    def bound(self) -> float:
        """Half a unit of the published value's last digit: what rounding to its digits allows."""
        return 0.5 * 10.0 ** Decimal(self.published).as_tuple().exponent

    @property
    def difference(self) -> float:
        return abs(self.ours - float(self.published))

    @property
    def ok(self) -> bool:
        return self.difference <= self.bound * (1 + 1e-9)


@dataclass(frozen=True)
class CalibrationSet:
    images: tuple[str, ...]
    ref: torch.Tensor  # (N,3,H,W) float32 in [0,1]
    dist: torch.Tensor
    published: dict[str, tuple[str, ...]]  # row -> one published value per image


# ------------------------------------------------------------------ the source
def _hint() -> str:
    return (f"check the network / pip index, or download {SDIST} (sha256 {SDIST_SHA256}) elsewhere "
            f"and pass it with `vidtok-bench calibrate --sdist PATH`")


def cached_sdist() -> Path:
    from .weights.manager import cache_dir

    return cache_dir() / "calibration" / SDIST


def fetch_sdist(*, pip_args: list[str] | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """The pinned pyiqa sdist: from the cache when its hash holds, else downloaded with pip into the cache."""
    from .weights.manager import pip_download

    dest = cached_sdist()
    if dest.is_file() and sha256_file(dest) == SDIST_SHA256:
        return dest
    if progress:
        progress(f"fetching the calibration pairs: {PACKAGE}=={VERSION} sdist (~8 MB, sha256-pinned) into {dest.parent} ...")
    with tempfile.TemporaryDirectory(prefix="vidtok_bench_cal_") as tmp:
        got = pip_download(f"{PACKAGE}=={VERSION}", SDIST_SHA256, Path(tmp), extra_args=pip_args, hint=_hint())
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.part")
        shutil.copyfile(got, part)
        part.replace(dest)  # atomic: a concurrent reader never sees half a file
    return dest


def _member(tf: tarfile.TarFile, sdist: Path, name: str) -> bytes:
    try:
        src = tf.extractfile(tf.getmember(name))
    except KeyError:
        src = None
    if src is None:
        raise BenchError(f"{sdist}: has no regular file {name}")
    with src:
        return src.read()


def _image(data: bytes, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchError(f"{where}: not a readable image ({exc})") from None


def read_set(sdist: str | Path, *, verify: bool = True) -> CalibrationSet:
    """The published scores and the image pairs they were computed on, read from the sdist (nothing extracted)."""
    sdist = check_path(sdist, "pyiqa sdist")
    if verify and (got := sha256_file(sdist)) != SDIST_SHA256:
        raise WeightsError(f"{sdist}: sha256 {got} is not the pinned {SDIST} ({SDIST_SHA256})")
    try:
        with tarfile.open(sdist, "r:*") as tf:
            table = list(csv.reader(io.StringIO(_member(tf, sdist, PUBLISHED).decode("utf-8"))))
            images = tuple(table[0][1:]) if table else ()
            if not images or any("/" in n or n in ("", ".", "..") for n in images):
                raise BenchError(f"{sdist}: {PUBLISHED} names no usable images ({', '.join(images) or 'none'})")
            published = {r[0]: tuple(r[1:]) for r in table[1:] if r and len(r) == len(images) + 1}
            pairs = [[_image(_member(tf, sdist, f"{ROOT}{d}/{n}"), f"{sdist}:{ROOT}{d}/{n}") for n in images]
                     for d in ("ref_dir", "dist_dir")]
    except tarfile.TarError as exc:
        raise BenchError(f"{sdist}: not a readable sdist ({one_line(exc)})") from None
    shapes = {a.shape for side in pairs for a in side}
    if len(shapes) != 1:
        raise BenchError(f"{sdist}: calibration images differ in size ({sorted(shapes)})")
    ref, dist = (torch.from_numpy(np.stack(side)).permute(0, 3, 1, 2).float() / 255 for side in pairs)
    return CalibrationSet(images, ref, dist, published)


# ------------------------------------------------------------------ the check
def _label(metric: str) -> str:
    from .registry import METRICS

    return METRICS.get(metric).info.label


def calibrate(cset: CalibrationSet, device: str = "cpu", checks: tuple[Check, ...] | None = None) -> list[Row]:
    """Score ``cset`` with each check's metric (default :data:`CHECKS`) on ``device``; one :class:`Row` per
    (metric, image)."""
    rows: list[Row] = []
    checks = CHECKS if checks is None else checks
    ref, dist = cset.ref.to(device), cset.dist.to(device)
    for c in checks:
        if c.row not in cset.published:
            raise BenchError(f"the calibration set publishes no '{c.row}' row (has: {', '.join(cset.published)})")
        values = c.score(ref, dist, device).double().cpu().tolist()
        for image, pub, ours in zip(cset.images, cset.published[c.row], values):
            try:
                finite = Decimal(pub).is_finite()
            except InvalidOperation:
                finite = False
            if not finite:
                raise BenchError(f"published {c.row} for {image} is not a number: '{pub}'")
            rows.append(Row(_label(c.metric), image, pub, float(ours)))
    return rows


def as_frame(rows: list[Row]):
    """The rows as a DataFrame that :func:`vidtok_bench.report.table.render` formats (markdown/csv/html/latex)."""
    import pandas as pd

    from .report.table import Column

    df = pd.DataFrame([{"metric": r.metric, "image": r.image, "published": r.published, "ours": r.ours,
                        "difference": r.difference, "bound": r.bound, "ok": "yes" if r.ok else "NO"} for r in rows])
    df.attrs["columns"] = {"metric": Column("Metric"), "image": Column("Image"), "published": Column("Published"),
                           "ours": Column("Ours", 6), "difference": Column("Abs. difference", 6),
                           "bound": Column("Allowed", 6), "ok": Column("Within")}
    return df
