"""Seed a private weights cache from ../shared/weights for tests (no network).

Use in a test module with ``from _weights_fixture import weights_cache  # noqa: F401`` and
request the ``weights_cache`` fixture: ``VIDTOK_BENCH_CACHE`` then points at a directory
(seeded once per session through ``vidtok-bench weights import``) holding all three networks.
"""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights"
_SEEDED: dict[str, Path] = {}


def seeded_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "dir" not in _SEEDED:
        if not SHARED_WEIGHTS.is_dir():
            pytest.skip(f"shared weights not found at {SHARED_WEIGHTS}")
        import os

        from vidtok_bench.weights import manager

        d = tmp_path_factory.mktemp("weights_cache")
        old = os.environ.get(manager.CACHE_ENV)
        os.environ[manager.CACHE_ENV] = str(d)
        try:
            manager.import_path(SHARED_WEIGHTS, progress=None)
        finally:
            if old is None:
                os.environ.pop(manager.CACHE_ENV, None)
            else:
                os.environ[manager.CACHE_ENV] = old
        _SEEDED["dir"] = d
    return _SEEDED["dir"]


def seeded_cache_with_dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded cache plus DISTS's alpha/beta imported from the installed DISTS-pytorch wheel (no download)."""
    pkg = pytest.importorskip("DISTS_pytorch")
    from vidtok_bench.weights import manager

    d = seeded_cache_dir(tmp_path_factory)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(manager.CACHE_ENV, str(d))
        manager.import_path(Path(pkg.__file__).parent / "weights.pt", progress=None)
    return d


@pytest.fixture
def weights_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache dir with i3d, alexnet and vgg16 installed; VIDTOK_BENCH_CACHE points at it."""
    d = seeded_cache_dir(tmp_path_factory)
    monkeypatch.setenv("VIDTOK_BENCH_CACHE", str(d))
    return d
