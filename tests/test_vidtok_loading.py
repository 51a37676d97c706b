"""Checkpoint loading (weights only, wrappers, safetensors, loss.* dropped, mismatch refused) and hub fetch."""
from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

import vidtok_bench
from vidtok_bench.checkpoints import check_state_dict, load_state_dict
from vidtok_bench.hashing import sha256_file
from vidtok_bench.errors import CheckpointError
from vidtok_bench.hub import fetch_checkpoint, vidtok_repo_path
from _vidtok_fixtures import FIXTURES, cases, overrides

CASE = "v10_kl_causal_488"


def _fixture_sd() -> dict:
    cases()
    return torch.load(FIXTURES / f"{CASE}.ckpt", weights_only=True)["state_dict"]


def test_wrapped_bare_and_safetensors_load_the_same(tmp_path) -> None:
    sd = _fixture_sd()
    assert any(k.startswith("loss.") for k in sd)
    wrapped = load_state_dict(FIXTURES / f"{CASE}.ckpt")
    assert not any(k.startswith("loss.") for k in wrapped)
    bare = tmp_path / "bare.ckpt"
    torch.save({k: v for k, v in sd.items()}, bare)
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items() if not k.startswith("loss.")}, str(st))
    for other in (load_state_dict(bare), load_state_dict(st)):
        assert other.keys() == wrapped.keys()
        assert all(torch.equal(other[k], wrapped[k]) for k in wrapped)


def test_safetensors_checkpoint_runs_like_the_ckpt(tmp_path) -> None:
    case = cases()[CASE]
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in _fixture_sd().items() if not k.startswith("loss.")}, str(st))
    tok = vidtok_bench.create_tokenizer("vidtok_kl_causal_488_4chn", checkpoint=str(st), device="cpu", **overrides(case))
    io = torch.load(FIXTURES / f"{CASE}.io.pt", weights_only=True)
    assert (tok.reconstruct(io["input"]) - io["recon"]).abs().max() <= 1e-4
    info = tok.weights_info()
    assert info["sha256"] == sha256_file(st) and info["version"] == "1.0" and info["path"] == str(st)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_arbitrary_pickles_are_refused(tmp_path) -> None:
    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": _Evil()}}, bad)
    with pytest.raises(CheckpointError, match="weights only"):
        load_state_dict(bad)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(pickle.dumps([1, 2]) + b"garbage")
    with pytest.raises(CheckpointError):
        load_state_dict(junk)
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict(tmp_path / "missing.ckpt")


def test_wrong_architecture_is_refused_with_first_mismatches() -> None:
    case = cases()[CASE]
    ov = dict(overrides(case), z_channels=16)  # checkpoint has 4
    tok = vidtok_bench.create_tokenizer("vidtok_kl_causal_488_4chn", checkpoint=str(FIXTURES / f"{CASE}.ckpt"), **ov)
    with pytest.raises(CheckpointError) as err:
        tok.encode(torch.zeros(1, 3, 17, 32, 32))
    msg = str(err.value)
    assert "\n" not in msg and "encoder.conv_out.conv.weight has shape [8, 32, 3, 3, 3], expected [32, 32, 3, 3, 3]" in msg


def test_check_state_dict_lists_missing_and_unexpected() -> None:
    expected = {"encoder.a": (2,), "decoder.b": (3,), "loss.x": (1,)}
    got = {"encoder.a": torch.zeros(2), "decoder.c": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"2 mismatches: missing decoder.b; unexpected decoder.c"):
        check_state_dict(expected, got, "f.ckpt")
    check_state_dict(expected, {"encoder.a": torch.zeros(2), "decoder.b": torch.zeros(3)}, "f.ckpt")


def _seed_hf_cache(cache, repo_path: str, payload: bytes) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / "models--microsoft--VidTok"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    target = repo_dir / "snapshots" / commit / repo_path
    target.parent.mkdir(parents=True)
    target.write_bytes(payload)


def test_hub_reuses_a_seeded_cache_offline(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    path = vidtok_repo_path("vidtok_kl_causal_488_4chn_v1_1", "1.1")
    assert path == "checkpoints/vidtok_v1_1/vidtok_kl_causal_488_4chn_v1_1.ckpt"
    assert vidtok_repo_path("vidtok_kl_causal_488_4chn") == "checkpoints/vidtok_kl_causal_488_4chn.ckpt"
    _seed_hf_cache(tmp_path, path, b"weights")
    got = fetch_checkpoint(path, cache_dir=tmp_path)
    assert got.read_bytes() == b"weights"


def test_hub_offline_without_cache_is_one_clear_line(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    tok = vidtok_bench.create_tokenizer("vidtok_kl_causal_488_16chn", device="cpu")
    with pytest.raises(CheckpointError) as err:
        tok.weights_info()
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("vidtok_kl_causal_488_16chn.ckpt", "microsoft/VidTok", "checkpoints/vidtok_kl_causal_488_16chn.ckpt",
                 "tokenizer.checkpoint=PATH"):
        assert part in msg
