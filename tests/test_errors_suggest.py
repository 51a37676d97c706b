"""Closest-name suggestions for unknown names (errors.suggest and UnknownNameError)."""
from __future__ import annotations

import re

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok_bench.cli import main
from vidtok_bench.errors import UnknownNameError, suggest

TOKENIZERS = ["trilinear_488", "vidtok_kl_causal_488_16chn", "vidtok_kl_causal_488_16chn_v1_1",
              "vidtok_kl_noncausal_488_16chn", "vidtok_kl_causal_488_8chn", "h264", "hevc", "wan", "wan2_2"]


def test_unknown_name_suggests_the_closest_then_lists_all():
    msg = str(UnknownNameError("tokenizer", "vidtok_kl_causal_488_16ch", TOKENIZERS))
    assert msg.startswith("unknown tokenizer 'vidtok_kl_causal_488_16ch'; did you mean 'vidtok_kl_causal_488_16chn'? known tokenizers: ")
    assert msg.endswith(", ".join(sorted(TOKENIZERS)))


def test_no_close_name_keeps_the_plain_message():
    assert str(UnknownNameError("protocol", "nope", ["vidtok", "tokenbench"])) == \
        "unknown protocol 'nope'; known protocols: tokenbench, vidtok"
    assert suggest("nope", ["vidtok", "tokenbench"]) == ""
    assert suggest("x", []) == ""


def test_case_is_ignored_and_the_known_spelling_shown():
    assert suggest("PSNR", ["psnr", "ssim", "lpips"]) == "did you mean 'psnr'?"
    assert suggest("h265", TOKENIZERS) == "did you mean 'h264'?"


def test_equally_close_names_are_all_offered():
    assert suggest("ssim_x", ["ssim_a", "ssim_b", "psnr"]) == "did you mean 'ssim_a' or 'ssim_b'?"


def test_cli_error_carries_the_suggestion(tmp_path, capsys):
    assert main(["run", "tokenizer=vidtok_kl_causal_488_16ch", f"output_dir={tmp_path}"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "did you mean 'vidtok_kl_causal_488_16chn'? known tokenizers: " in line


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=24)


@settings(max_examples=200, deadline=None)
@given(name=names, known=st.lists(names, max_size=30))
def test_suggestions_are_known_names_in_one_line(name, known):
    hint = suggest(name, known)
    assert "\n" not in hint
    if hint:
        assert hint.startswith("did you mean '") and hint.endswith("'?")
        offered = re.findall(r"'([^']*)'", hint)
        assert 1 <= len(offered) <= 3 and set(offered) <= set(known)
    if name in known:
        assert hint.startswith(f"did you mean '{name}'")  # an exact name is always the closest


@pytest.mark.parametrize(("key", "expected"), [
    ("nokey", "unknown key 'nokey'; valid keys: batch_size, "),
    ("bach_size", "unknown key 'bach_size' (did you mean 'batch_size'?); valid keys: "),
    ("protocol.sise", "unknown key 'protocol.sise' (did you mean 'size'?); protocol keys: clip_len, "),
    ("protocol.nosuch", "unknown key 'protocol.nosuch'; protocol keys: "),  # not "did you mean 'protocol'?"
])
def test_an_unknown_key_is_named_with_the_keys_of_its_own_level(key, expected):
    from vidtok_bench.config import compose
    from vidtok_bench.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        compose([f"{key}=1"])
    assert expected in str(exc.value) and "\n" not in str(exc.value)
