"""Shared test fixtures: the ../shared data folder and small helpers."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp: see vidtok_bench/__init__.py
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # before torch's first allocation: see vidtok_bench/__init__.py

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# keep the suite within two cores and deterministic
torch.set_num_threads(min(2, os.cpu_count() or 1))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: tests marked ``network`` contact a package registry; they run only when this is "1" (CI sets it)
NETWORK_ENV = "VIDTOK_BENCH_TEST_NETWORK"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.network`` tests unless opted in: a plain `pytest -q` stays off the network."""
    if os.environ.get(NETWORK_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"contacts a package registry; set {NETWORK_ENV}=1 to run it")
    for item in items:
        if item.get_closest_marker("network"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.exists():
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def shared_videos(shared: Path) -> Path:
    return shared / "videos"
