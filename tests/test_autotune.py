"""cuDNN autotuning is turned on for CUDA calls that repeat their shape, forced when asked, and always restored."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _weights_fixture import seeded_cache_dir, weights_cache  # noqa: F401  (fixture)

from vidtok_bench.autotune import StaticShapeAutotune

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@given(shapes=st.lists(st.sampled_from([(1, 3), (2, 3), (1, 4)]), min_size=1, max_size=12))
def test_a_call_is_autotuned_exactly_when_it_repeats_the_previous_shape_of_its_kind(shapes):
    auto = StaticShapeAutotune()
    for k, shape in enumerate(shapes):
        want = True if k and shapes[k - 1] == shape else None
        assert auto.decide("encode", shape) is want
    assert auto.decide("decode", shapes[-1]) is None  # kinds are tracked apart


@pytest.mark.parametrize("force", [True, False])
def test_force_overrides_the_rule(force):
    auto = StaticShapeAutotune(force)
    assert [auto.decide("k", (1,)) for _ in range(3)] == [force] * 3


@pytest.mark.parametrize("caller", [True, False])
def test_scope_sets_the_flag_on_cuda_only_and_restores_it(caller):
    old = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = caller
        auto = StaticShapeAutotune()
        for _ in range(2):  # second call repeats the shape
            with auto.scope(CPU, "k", (4, 4)):
                assert torch.backends.cudnn.benchmark is caller  # CPU calls never touch it
        auto.reset()
        with auto.scope(CUDA, "k", (4, 4)):
            assert torch.backends.cudnn.benchmark is caller  # first sight of a shape: the caller's setting
        with pytest.raises(RuntimeError, match="boom"), auto.scope(CUDA, "k", (4, 4)):
            assert torch.backends.cudnn.benchmark is True
            raise RuntimeError("boom")
        assert torch.backends.cudnn.benchmark is caller  # restored, also after an error
    finally:
        torch.backends.cudnn.benchmark = old


def test_lpips_and_vidtok_calls_go_through_the_rule(weights_cache, monkeypatch):
    """Each LPIPS pair call and sequence call, and each VidTok encode/decode, opens one scope with its own kind and
    the input's shape (recorded here by wrapping StaticShapeAutotune.scope)."""
    import sys
    from pathlib import Path

    from vidtok_bench.metrics import LPIPS

    seen = []
    real = StaticShapeAutotune.scope

    def spy(self, device, kind, shape):
        seen.append((kind, tuple(shape)))
        return real(self, device, kind, shape)

    monkeypatch.setattr(StaticShapeAutotune, "scope", spy)
    net = LPIPS("alex", device="cpu", fetch=False)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    net(x, x)
    net.consecutive(x)
    assert seen == [("pairs", (3, 3, 32, 32)), ("sequence", (3, 3, 32, 32))]

    sys.path.insert(0, str(Path(__file__).parent))
    from _vidtok_fixtures import FIXTURES, cases, config_name, overrides

    import vidtok_bench

    c = cases()["v10_kl_causal_488"]
    tok = vidtok_bench.create_tokenizer(config_name(c), checkpoint=str(FIXTURES / "v10_kl_causal_488.ckpt"), **overrides(c))
    seen.clear()
    z = tok.encode(torch.zeros(1, 3, 9, 16, 16))
    tok.decode(z)
    assert [k for k, _ in seen] == ["encode", "decode"] and seen[0][1] == (1, 3, 9, 16, 16)
