"""The restricted unpickler: numpy arrays load, any other global is refused before it runs."""
from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from vidtok_bench.errors import WeightsError
from vidtok_bench.weights.safe_unpickle import safe_load

SHARED_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights"
ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
           ("numpy", "ndarray"), ("numpy", "dtype")}


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_os_system_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps({"w": np.ones(3, np.float32), "x": _Evil(marker)})
    with pytest.raises(WeightsError, match="system"):
        safe_load(data)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("obj", [eval, print, io.BytesIO, np.load, pickletools.dis])
def test_other_globals_are_refused(obj, protocol: int) -> None:
    with pytest.raises(WeightsError, match="refusing"):
        safe_load(pickle.dumps({"a": np.zeros(2), "f": obj}, protocol=protocol))


@settings(max_examples=40, deadline=None)
@given(st.from_regex(r"[a-z_][a-z0-9_.]{0,20}", fullmatch=True), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True))
def test_any_global_outside_the_allow_list_is_refused(module: str, name: str) -> None:
    if (module, name) in ALLOWED:
        return
    data = b"c" + module.encode() + b"\n" + name.encode() + b"\n."  # protocol-0 GLOBAL opcode
    with pytest.raises(WeightsError, match="refusing to load global"):
        safe_load(data)


def test_numpy_arrays_round_trip_under_protocols_3_and_4() -> None:
    # the upstream files use these; protocol 2 (_codecs.encode) and 5 (_frombuffer) need other globals
    tree = {"a": {"kernel": np.arange(12, dtype=np.float32).reshape(3, 4)}, "b": np.array([1, 2], np.int64)}
    for protocol in (3, 4):
        got = safe_load(pickle.dumps(tree, protocol=protocol))
        assert np.array_equal(got["a"]["kernel"], tree["a"]["kernel"]) and got["b"].dtype == np.int64


def test_truncated_pickle_is_a_weights_error() -> None:
    data = pickle.dumps({"w": np.ones(100)})
    with pytest.raises(WeightsError, match="not a readable weights pickle"):
        safe_load(data[: len(data) // 2])


@pytest.mark.skipif(not SHARED_WEIGHTS.is_dir(), reason="shared weights not present")
def test_real_upstream_ckpt_loads_with_only_numpy_globals() -> None:
    tree = safe_load(SHARED_WEIGHTS / "alexnet.ckpt")
    assert tree["AlexNet_0"]["Conv_0"]["kernel"].shape == (11, 11, 3, 64)
    assert tree["NetLinLayer_4"]["Conv_0"]["kernel"].shape == (1, 1, 256, 1)
