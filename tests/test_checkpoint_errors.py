"""A checkpoint that is not one fails as one plain line, never with PyTorch's weights_only=False advice."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vidtok_bench.checkpoints import load_state_dict
from vidtok_bench.errors import CheckpointError

#: PyTorch's weights-only failure text; it advises unpickling with weights_only=False
TORCH_ADVICE = ("Weights only load failed", "weights_only set to False", "Re-running", "add_safe_globals")


def assert_plain(msg: str, path: Path) -> None:
    assert "\n" not in msg and str(path) in msg, msg
    assert not any(a in msg for a in TORCH_ADVICE), msg


@pytest.mark.parametrize(
    "content, why",
    [
        (b"", "empty file"),
        (b"hello world, not weights\n", "neither a zip archive nor a pickle"),
        (b"\x80\x04\x95garbage-after-a-pickle-header", None),
        (b"PK\x03\x04" + bytes(200), "zip archive"),
    ],
)
def test_garbage_checkpoint_is_one_plain_line(tmp_path, content, why):
    p = tmp_path / "model.ckpt"
    p.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_state_dict(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: not a PyTorch/safetensors checkpoint (")
    assert why is None or why in msg
    assert_plain(msg, p)


def test_garbage_safetensors_is_one_plain_line(tmp_path):
    p = tmp_path / "model.safetensors"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a PyTorch/safetensors checkpoint \(safetensors: "):
        load_state_dict(p)


def test_directory_checkpoint_is_named_as_one(tmp_path):
    """A folder given as checkpoint (e.g. the download folder) is not reported as "not found"."""
    import vidtok_bench

    with pytest.raises(CheckpointError, match=rf"^{tmp_path}: is a directory, not a checkpoint file$"):
        load_state_dict(tmp_path)
    tok = vidtok_bench.create_tokenizer("vidtok_kl_causal_488_4chn", checkpoint=str(tmp_path), device="cpu")
    with pytest.raises(CheckpointError, match=rf"^{tmp_path}: is a directory, not a checkpoint file$"):
        tok.load()
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'none.ckpt'}: checkpoint file not found$"):
        load_state_dict(tmp_path / "none.ckpt")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_object_is_refused_without_torch_advice(tmp_path):
    p = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": _Evil()}}, p)
    with pytest.raises(CheckpointError) as err:
        load_state_dict(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: refused: it holds a Python object (") and "weights only" in msg
    assert_plain(msg, p)


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory) -> bytes:
    p = tmp_path_factory.mktemp("ckpt") / "small.ckpt"
    torch.save({"state_dict": {"encoder.w": torch.arange(64.0).reshape(8, 8), "decoder.b": torch.ones(3)}, "epoch": 1}, p)
    return p.read_bytes()


@settings(max_examples=25, deadline=5_000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
@example(data=None)  # the file cut in half
def test_damaged_checkpoint_loads_or_fails_plainly(tmp_path, real_checkpoint, data):
    """Truncated / overwritten real checkpoints: a dict of tensors or one plain CheckpointError, nothing else."""
    b = bytearray(real_checkpoint)
    if data is None:
        b = b[: len(b) // 2]
    elif data.draw(st.booleans(), label="truncate"):
        b = b[: data.draw(st.integers(0, len(b) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 8), label="writes")):
            i = data.draw(st.integers(0, len(b) - 1), label="offset")
            b[i] = data.draw(st.integers(0, 255), label="byte")
    p = tmp_path / f"damaged{time.monotonic_ns()}.ckpt"
    p.write_bytes(bytes(b))
    try:
        sd = load_state_dict(p)
    except CheckpointError as exc:
        assert_plain(str(exc), p)
    else:
        assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items())
