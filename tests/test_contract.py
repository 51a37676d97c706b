"""Interface contract of every registered plugin (in the spirit of diffusers' tester mixins and
torchmetrics' MetricTester): tokenizers, datasets and metrics are discovered from the registries
and named configs, so a new plugin gets the same checks without editing this file.

* Tokenizers, weight-free, for every named config (``conf/tokenizer/*.yaml`` plus plugins that
  have none): construction, declared attributes, ``info(weights=False)`` against the results
  schema, the frame rule against compression/causality, ``check_input``, unknown options.
* Tokenizers at run time, for one cheap instance per weight-free named config and tiny configs of
  the plugins that need weights (VidTok fixture checkpoints, random diffusers VAEs): measured
  latent shape vs declared compression, decode shape/range, rate model, determinism, bad input.
* Datasets, for every named dataset config: ids, clip layout, determinism, centre crop, options.
* Metrics, for every metric plugin (and every protocol's options for it): declared facts, frame
  metric direction and reductions, set metric state round-trip and shard merging.

A plugin that breaks the contract gets one ``xfail(strict=True)`` entry in VIOLATIONS below
(FLAKY_VIOLATIONS, non-strict, only for breaks that show up intermittently).
"""
from __future__ import annotations

import copy
import json
import math
import uuid
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import pytest
import torch

import _contract_helpers as H
from _vidtok_fixtures import FIXTURES, cases as vidtok_cases, config_name, overrides as vidtok_overrides
from _weights_fixture import weights_cache  # noqa: F401  (fixture)
from vidtok_bench import create_dataset, create_tokenizer
from vidtok_bench.config import group_names, resolve_group, yaml_names
from vidtok_bench.data import Dataset
from vidtok_bench.errors import BenchError, CheckpointError, ConfigError, InputShapeError, WeightsError
from vidtok_bench.frames import FrameRule
from vidtok_bench.metrics.base import ClipMetric, FrameMetric, LatentMetric, Metric, SetMetric
from vidtok_bench.precision import Precision
from vidtok_bench.registry import DATASETS, METRICS, TOKENIZERS, accepted_options
from vidtok_bench.report.gate import parse_tolerance
from vidtok_bench.results import DatasetBlock, MetricInfo, TokenizerBlock
from vidtok_bench.tokenizer import Tokenizer

torch.set_num_threads(2)

# ----------------------------------------------------------------------------- known violations
#: (test function, param id) -> what the plugin does wrong; each becomes xfail(strict=True)
VIOLATIONS: dict[tuple[str, str], str] = {}


_H264_INTERFERENCE = (
    "codec h264 is not reproducible within a process: after other codecs (av1/hevc/vp9) encode+decode, the first "
    "h264 encode of a 2x9x32x32 batch differs from later ones in ~3 of 10 processes (IDR packet 333-379 B instead of "
    "233 B); with gc.collect()+0.5 s sleep between tokenizers 10/10 are identical, so work of the previous codec "
    "outlives its call. Intermittent, hence not strict (a strict xfail would fail whenever the race is not hit)")
#: violations that show up only intermittently: xfail(strict=False), still reported
FLAKY_VIOLATIONS: dict[tuple[str, str], str] = {
    ("test_tokenizer_is_deterministic", "codec:h264"): _H264_INTERFERENCE,
    ("test_tokenizer_is_deterministic", "codec:codec"): _H264_INTERFERENCE,  # the bare plugin name: h264 defaults
}


def _params(test: str, items: dict[str, Any]) -> list:
    out = []
    for pid, value in items.items():
        marks = []
        if (test, pid) in VIOLATIONS:
            marks.append(pytest.mark.xfail(strict=True, reason=VIOLATIONS[test, pid]))
        elif (test, pid) in FLAKY_VIOLATIONS:
            marks.append(pytest.mark.xfail(strict=False, reason=FLAKY_VIOLATIONS[test, pid]))
        out.append(pytest.param(value, id=pid, marks=marks))
    return out


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg.strip() and "\n" not in msg, f"{type(exc).__name__} message is not one line: {msg!r}"
    return msg


# ============================================================================= tokenizers
TOKENIZER_PLUGINS = TOKENIZERS.plugins()
TOKENIZER_CONFIGS = {n: resolve_group("tokenizer", n) for n in group_names("tokenizer")}
SHIPPED_TOKENIZER_CONFIGS = set(yaml_names("tokenizer"))
_NAMED: dict[str, Tokenizer] = {}


def _named(name: str) -> Tokenizer:
    """The named config built as ``create_tokenizer(name)`` does (weights stay unloaded). A plugin
    without a shipped config that cannot be built without options must say so in one line."""
    if name not in _NAMED:
        try:
            _NAMED[name] = TOKENIZERS.build(TOKENIZER_CONFIGS[name])
        except BenchError as exc:
            if name in SHIPPED_TOKENIZER_CONFIGS:
                raise
            pytest.skip(f"tokenizer '{name}' (the bare plugin name, no YAML) needs options to build: {_one_line(exc)}")
    return _NAMED[name]


def _bad_input(tok: Tokenizer, kind: str, b: int, t: int, h: int, w: int) -> torch.Tensor | None:
    """An input ``check_input`` must refuse (None where the tokenizer accepts every input of that kind)."""
    if kind == "4d":
        return H.smooth_video(b, t, h, w)[0]
    if kind == "channels":
        return H.smooth_video(b, t, h, w)[:, :2].repeat(1, 2, 1, 1, 1)
    if kind == "frames":
        refused = next((n for n in (t + 1, t - 1, t + 2, 0) if n >= 0 and not tok.frame_rule.accepts(n)), None)
        return None if refused is None else H.smooth_video(b, max(refused, 1), h, w)[:, :, :refused]
    if kind == "spatial":
        return None if tok.spatial_multiple == 1 else H.smooth_video(b, t, h + 1, w + 1)
    if kind == "small":  # frames one step narrower than the tokenizer's minimum
        s, mw = tok.spatial_multiple, tok.min_frame_size[1]
        return None if mw - s < 1 else H.smooth_video(b, t, h, (mw - 1) // s * s)
    if kind == "0_255":  # float pixels on the uint8 scale: saturated white once clamped, a plausible wrong score
        return (H.smooth_video(b, t, h, w) + 1) * 127.5
    raise AssertionError(kind)


BAD_KINDS = ("4d", "channels", "frames", "spatial", "small", "0_255")


@pytest.mark.parametrize("name", _params("test_tokenizer_declarations", {n: n for n in TOKENIZER_CONFIGS}))
def test_tokenizer_declarations(name: str) -> None:
    tok = _named(name)
    assert isinstance(tok, Tokenizer)
    assert tok.plugin_name == TOKENIZER_CONFIGS[name]["plugin"]
    assert isinstance(tok.name, str) and tok.name
    comp = tuple(tok.compression)
    assert len(comp) == 3 and all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in comp), comp
    assert isinstance(tok.causal, bool)
    assert isinstance(tok.frame_rule, FrameRule)
    pcl = tok.preferred_clip_len
    assert pcl is None or (isinstance(pcl, int) and pcl >= 1), pcl
    s = tok.spatial_multiple
    assert isinstance(s, int) and s >= 1
    mh, mw = tok.min_frame_size
    assert isinstance(mh, int) and isinstance(mw, int) and mh >= 1 and mw >= 1, tok.min_frame_size
    assert s % comp[1] == 0 and s % comp[2] == 0, f"spatial_multiple {s} does not make H/{comp[1]}, W/{comp[2]} whole"
    assert isinstance(tok.latent_channels, int) and tok.latent_channels >= 1
    if tok.codebook_size is not None:
        assert isinstance(tok.codebook_size, int) and not isinstance(tok.codebook_size, bool) and tok.codebook_size >= 2
    else:
        assert math.isfinite(float(tok.bits_per_element)) and float(tok.bits_per_element) > 0
    assert isinstance(tok.family, str) and tok.family.strip()
    assert tok.precision is None or isinstance(tok.precision, Precision)
    bpp = tok.nominal_bits_per_pixel()
    assert isinstance(bpp, float) and (math.isnan(bpp) or (math.isfinite(bpp) and bpp > 0)), bpp


@pytest.mark.parametrize("name", _params("test_tokenizer_info_is_json_and_schema", {n: n for n in TOKENIZER_CONFIGS}))
def test_tokenizer_info_is_json_and_schema(name: str) -> None:
    tok = _named(name)
    info = tok.info(weights=False)
    json.dumps(info, allow_nan=False)  # strict JSON: results files have no NaN
    TokenizerBlock.model_validate({**info, "config": dict(TOKENIZER_CONFIGS[name])})
    assert info["name"] == tok.name and info["plugin"] == TOKENIZER_CONFIGS[name]["plugin"]
    assert info["family"] == tok.family and info["family"].strip()
    assert info["compression"] == list(tok.compression) and info["causal"] == tok.causal
    assert info["frame_rule"] == tok.frame_rule.describe()
    assert info["latent_channels"] == tok.latent_channels and info["codebook_size"] == tok.codebook_size
    assert info["weights"] is None
    if info["nominal_bits_per_pixel"] is not None:
        assert info["nominal_bits_per_pixel"] == pytest.approx(tok.nominal_bits_per_pixel())


@pytest.mark.parametrize("name", _params("test_tokenizer_frame_rule_fits_compression", {n: n for n in TOKENIZER_CONFIGS}))
def test_tokenizer_frame_rule_fits_compression(name: str) -> None:
    """Every frame count the rule accepts is one the declared layout encodes exactly: T = t*k+1
    for causal tokenizers (first frame alone), T = t*k otherwise."""
    tok = _named(name)
    rule, t = tok.frame_rule, tok.compression[0]
    accepted, n = [], 1
    while len(accepted) < 4:
        n = rule.fit_up(n)
        assert rule.accepts(n) and n >= 1
        accepted.append(n)
        n += 1
    for T in accepted:
        if tok.causal:
            assert (T - 1) % t == 0, f"causal, t={t}, but the rule ({rule.describe()}) accepts {T} frames"
        else:
            assert T % t == 0, f"non-causal, t={t}, but the rule ({rule.describe()}) accepts {T} frames"
    if tok.preferred_clip_len:
        assert rule.fit_up(tok.preferred_clip_len) >= tok.preferred_clip_len


@pytest.mark.parametrize("bad", BAD_KINDS)
@pytest.mark.parametrize("name", _params("test_tokenizer_check_input_refuses", {n: n for n in TOKENIZER_CONFIGS}))
def test_tokenizer_check_input_refuses(name: str, bad: str) -> None:
    tok = _named(name)
    video = _bad_input(tok, bad, *H.default_shape(tok))
    if video is None:
        pytest.skip(f"{name} accepts every input of this kind ({bad})")
    with pytest.raises(InputShapeError) as err:
        tok.check_input(video)
    _one_line(err.value)


@pytest.mark.parametrize("name", _params("test_tokenizer_rejects_unknown_option", {n: n for n in TOKENIZER_CONFIGS}))
def test_tokenizer_rejects_unknown_option(name: str) -> None:
    cfg = TOKENIZER_CONFIGS[name]
    with pytest.raises(ConfigError) as err:
        TOKENIZERS.build({**cfg, "bogus": 1})
    assert "bogus" in _one_line(err.value)
    # a near miss of a real option names it as the suggestion
    valid = accepted_options(TOKENIZERS.get(cfg["plugin"]))
    opt = "device" if "device" in valid else max(sorted(valid), key=len)
    with pytest.raises(ConfigError) as err:
        TOKENIZERS.build({**cfg, opt + opt[-1]: cfg.get(opt)})
    msg = _one_line(err.value)
    assert f"'{opt + opt[-1]}'" in msg and f"'{opt}'" in msg, msg


# ----------------------------------------------------------------------------- run-time cases
@dataclass(frozen=True)
class RCase:
    id: str
    plugin: str
    build: Callable[[], Tokenizer] | None
    shape: tuple[int, int, int, int] | None = None  # (B, T, H, W); None: H.default_shape
    skip: str | None = None


def _require_codec_support(tok: Tokenizer) -> None:
    import av

    spec = tok.spec  # the codec plugin's encoder/decoder names
    try:
        av.codec.Codec(spec.encoder, "w")
    except Exception:
        pytest.skip(f"{tok.name}: this PyAV/FFmpeg build has no encoder {spec.encoder}")
    for name in spec.decoders:
        try:
            av.codec.Codec(name, "r")
            return
        except Exception:
            continue
    pytest.skip(f"{tok.name}: this PyAV/FFmpeg build has none of the decoders {', '.join(spec.decoders)}")


def _build_named_runtime(name: str) -> Tokenizer:
    plugin = TOKENIZERS.get(TOKENIZER_CONFIGS[name]["plugin"])
    tok = create_tokenizer(name, device="cpu") if "device" in accepted_options(plugin) else create_tokenizer(name)
    if tok.plugin_name == "codec":
        _require_codec_support(tok)
    return tok


def _build_vidtok(fixture: str) -> Tokenizer:
    case = vidtok_cases()[fixture]  # skips when the fixtures are absent
    return create_tokenizer(config_name(case), checkpoint=str(FIXTURES / f"{fixture}.ckpt"), device="cpu", **vidtok_overrides(case))


def _build_diffusers_tiny(name: str) -> Tokenizer:
    cfg = H.DIFFUSERS_TINY[TOKENIZER_CONFIGS[name]["vae_class"]][0]
    return create_tokenizer(name, pretrained=None, config=cfg, device="cpu")


def _runtime_cases() -> list[RCase]:
    out: list[RCase] = []
    for plugin in sorted(TOKENIZER_PLUGINS):
        names = [n for n, c in TOKENIZER_CONFIGS.items() if c.get("plugin") == plugin]
        if plugin == "vidtok":  # needs a checkpoint: the tiny official fixtures
            out += [RCase(f"vidtok:{fx}", plugin, partial(_build_vidtok, fx)) for fx in H.VIDTOK_FIXTURES]
        elif plugin == "diffusers_vae":  # needs hub weights: one tiny random model per VAE class
            first: dict[str, str] = {}
            for n in names:
                if TOKENIZER_CONFIGS[n].get("vae_class"):  # the bare plugin name has none (and cannot build)
                    first.setdefault(TOKENIZER_CONFIGS[n]["vae_class"], n)
            for cls, n in first.items():
                if cls in H.DIFFUSERS_TINY:
                    out.append(RCase(f"diffusers_vae:{n}-tiny", plugin, partial(_build_diffusers_tiny, n), H.DIFFUSERS_TINY[cls][1]))
                else:
                    out.append(RCase(f"diffusers_vae:{n}", plugin, None, skip=f"no tiny random config for {cls} in "
                                     "_contract_helpers.DIFFUSERS_TINY (weight-free checks cover it)"))
        else:  # weight-free plugins (and new ones): every named config as shipped
            out += [RCase(f"{plugin}:{n}", plugin, partial(_build_named_runtime, n)) for n in names]
    return out


RUNTIME_CASES = _runtime_cases()
_BUILT: dict[str, Tokenizer] = {}
_RUNS: dict[str, dict[str, Any]] = {}


def _tok(case: RCase) -> Tokenizer:
    if case.skip:
        pytest.skip(case.skip)
    if case.id not in _BUILT:
        _BUILT[case.id] = case.build()
    return _BUILT[case.id]


def _shape(case: RCase, tok: Tokenizer) -> tuple[int, int, int, int]:
    return case.shape or H.default_shape(tok)


def _roundtrip(case: RCase) -> dict[str, Any]:
    """encode + decode of a smooth test video, once per case."""
    if case.id not in _RUNS:
        tok = _tok(case)
        x = H.smooth_video(*_shape(case, tok))
        try:
            z = tok.encode(x)
            y = tok.decode(z)
        except (CheckpointError, WeightsError) as exc:
            if case.plugin in ("vidtok", "diffusers_vae"):
                raise
            pytest.skip(f"tokenizer plugin '{case.plugin}' ({case.id}) needs weights that are not available offline: {exc}")
        _RUNS[case.id] = {"tok": tok, "x": x, "z": z, "y": y}
    return _RUNS[case.id]


def _rparams(test: str) -> list:
    return _params(test, {c.id: c for c in RUNTIME_CASES})


@pytest.mark.parametrize("case", _rparams("test_tokenizer_latent_matches_declared_compression"))
def test_tokenizer_latent_matches_declared_compression(case: RCase) -> None:
    r = _roundtrip(case)
    tok, x, z = r["tok"], r["x"], r["z"]
    if not torch.is_tensor(z):
        pytest.skip(f"{case.id}: the latent is a {type(z).__name__}, not a tensor; its size is checked by the rate test")
    b, _, T, h, w = x.shape
    tt, th, tw = tok.compression
    if tok.causal:
        assert (T - 1) % tt == 0, f"causal t={tt} with T={T}"
        t_lat = (T - 1) // tt + 1
    else:
        assert T % tt == 0, f"non-causal t={tt} with T={T}"
        t_lat = T // tt
    grid = (t_lat, h // th, w // tw)
    if tok.codebook_size is not None:
        assert not torch.is_floating_point(z) and not torch.is_complex(z) and z.dtype != torch.bool, z.dtype
        assert z.ndim in (4, 5) and z.shape[0] == b and tuple(z.shape[-3:]) == grid, (tuple(z.shape), grid)
        assert int(z.min()) >= 0 and int(z.max()) < tok.codebook_size
    else:
        assert torch.is_floating_point(z), z.dtype
        assert tuple(z.shape) == (b, tok.latent_channels, *grid)
        assert torch.isfinite(z).all()


@pytest.mark.parametrize("case", _rparams("test_tokenizer_decode_restores_shape_and_range"))
def test_tokenizer_decode_restores_shape_and_range(case: RCase) -> None:
    r = _roundtrip(case)
    x, y = r["x"], r["y"]
    assert torch.is_tensor(y) and tuple(y.shape) == tuple(x.shape) and y.dtype == torch.float32, (type(y), getattr(y, "shape", None))
    assert torch.isfinite(y).all()
    # [-1,1] up to overshoot the protocol's clamp removes (the tiny VidTok/diffusers weights are
    # untrained, so their overshoot is large): the bulk in range, nothing on another scale ([0,255])
    a = y.abs()
    assert float(a.median()) <= 1.0 and float(a.max()) <= 10.0, (float(a.median()), float(a.max()))


@pytest.mark.parametrize("case", _rparams("test_tokenizer_latent_bits_follow_rate_model"))
def test_tokenizer_latent_bits_follow_rate_model(case: RCase) -> None:
    r = _roundtrip(case)
    tok, x, z = r["tok"], r["x"], r["z"]
    bits = tok.latent_bits(z)
    assert isinstance(bits, float) and math.isfinite(bits) and bits > 0, bits
    if not torch.is_tensor(z):
        return  # e.g. codecs: the encoded bytes, > 0
    per = math.log2(tok.codebook_size) if tok.codebook_size is not None else float(tok.bits_per_element)
    assert bits == pytest.approx(z.numel() * per, rel=1e-12)
    # the nominal rate is the same model: each latent frame stands for t frames of H x W pixels
    b, _, _, h, w = x.shape
    assert bits == pytest.approx(tok.nominal_bits_per_pixel() * b * z.shape[-3] * tok.compression[0] * h * w, rel=1e-9)
    # ... and what a codec's match= spends is this latent's size, predicted from the shape alone
    assert b * tok.latent_bits_for(*x.shape[2:]) == bits, (tok.latent_bits_for(*x.shape[2:]), bits / b)


@pytest.mark.parametrize("case", _rparams("test_tokenizer_is_deterministic"))
def test_tokenizer_is_deterministic(case: RCase) -> None:
    r = _roundtrip(case)
    tok, x = r["tok"], r["x"]
    assert torch.equal(x, H.smooth_video(*x.shape[:1], *x.shape[2:])), "encode modified its input"
    z = r["z"]
    for _ in range(3):  # a few tries: some encoders differ only now and then
        z2 = tok.encode(x)
        if torch.is_tensor(z):
            assert torch.equal(z2, z), "encode gave a different latent"
        elif type(z).__eq__ is not object.__eq__:  # e.g. a dataclass of encoded streams
            assert z2 == z, "encode gave a different bitstream"
        else:
            assert tok.latent_bits(z2) == tok.latent_bits(z), "encode gave a different bitstream size"
    assert torch.equal(tok.decode(z2), r["y"]), "encode+decode gave a different reconstruction"


@pytest.mark.parametrize("bad", BAD_KINDS)
@pytest.mark.parametrize("case", _rparams("test_tokenizer_encode_refuses_bad_input"))
def test_tokenizer_encode_refuses_bad_input(case: RCase, bad: str) -> None:
    tok = _tok(case)
    video = _bad_input(tok, bad, *_shape(case, tok))
    if video is None:
        pytest.skip(f"{case.id} accepts every input of this kind ({bad})")
    want = InputShapeError if bad in ("frames", "spatial", "small") else BenchError
    with pytest.raises(want) as err:
        tok.encode(video)
    _one_line(err.value)


def test_every_tokenizer_plugin_is_covered() -> None:
    assert TOKENIZER_PLUGINS, "no tokenizer plugins registered"
    assert set(TOKENIZER_PLUGINS) <= {c.get("plugin") for c in TOKENIZER_CONFIGS.values()}
    assert set(TOKENIZER_PLUGINS) <= {c.plugin for c in RUNTIME_CASES if not c.skip}, "a plugin has no run-time case"


# ============================================================================= datasets
DATASET_PLUGINS = DATASETS.plugins()
DATASET_CONFIGS = {n: resolve_group("dataset", n) for n in group_names("dataset")}
PREPROCESS = dict(size=32, clip_len=9, max_frames=20, crop="center")
#: how to feed the dataset plugins we know (a new plugin falls back to its defaults, or is skipped)
FEEDS: dict[str, Callable[[dict], dict]] = {
    "synthetic": lambda files: dict(num_videos=2, num_frames=20, height=48, width=64),
    "folder": lambda files: dict(root=str(files["folder"])),
    "mcl_jcv": lambda files: dict(root=str(files["mcl_jcv"]), allow_missing=True),
    "video_list": lambda files: dict(list=str(files["video_list"]), root=str(files["folder"])),
    # a named set's sequence list / sub-folder / extensions are data selection: reset to ours
    "image_sequence": lambda files: dict(root=str(files["image_sequence"]), source_fps=30, sequences=None,
                                         frames_subdir=None, extensions=None),
}
_DATA: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module")
def dataset_files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return H.make_dataset_files(tmp_path_factory.mktemp("contract_data"))


def _dplugin(name: str) -> str:
    return DATASET_CONFIGS[name]["plugin"]


def _build_dataset(name: str, files: dict, **extra: Any) -> Dataset:
    feed = FEEDS.get(_dplugin(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. mcl_jcv: "28 of 30 listed videos missing"
        if feed is None:
            try:
                return create_dataset(name, **{**PREPROCESS, **extra})
            except BenchError as exc:
                pytest.skip(f"dataset plugin '{_dplugin(name)}' ({name}): no test input known; without options: {_one_line(exc)}")
        return create_dataset(name, **{**feed(files), **PREPROCESS, **extra})


def _videos(ds: Dataset, name: str) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ds.videos()
        except BenchError as exc:
            if _dplugin(name) in FEEDS:
                raise
            pytest.skip(f"dataset plugin '{_dplugin(name)}' ({name}): no test input known; videos(): {_one_line(exc)}")


def _data(name: str, files: dict) -> dict[str, Any]:
    if name not in _DATA:
        ds = _build_dataset(name, files)
        vids = _videos(ds, name)[:3]
        _DATA[name] = {"ds": ds, "videos": vids, "clips": {v.id: list(ds.clips(v)) for v in vids}}
    return _DATA[name]


def _dparams(test: str) -> list:
    return _params(test, {n: n for n in DATASET_CONFIGS})


@pytest.mark.parametrize("name", _dparams("test_dataset_rejects_unknown_option"))
def test_dataset_rejects_unknown_option(name: str, dataset_files: dict) -> None:
    feed = FEEDS.get(_dplugin(name), lambda files: {})(dataset_files)
    with pytest.raises(ConfigError) as err:
        create_dataset(name, **{**feed, **PREPROCESS, "bogus": 1})
    assert "bogus" in _one_line(err.value)


@pytest.mark.parametrize("name", _dparams("test_dataset_without_options"))
def test_dataset_without_options(name: str) -> None:
    """Built from its named config alone it either works or says in one line what is missing."""
    try:
        ds = create_dataset(name)
    except BenchError as exc:
        _one_line(exc)
        return
    assert isinstance(ds, Dataset)


@pytest.mark.parametrize("name", _params("test_dataset_missing_root", {n: n for n in DATASET_CONFIGS
                                                                       if "root" in accepted_options(DATASET_PLUGINS[DATASET_CONFIGS[n]["plugin"]])}))
def test_dataset_missing_root(name: str, tmp_path) -> None:
    with pytest.raises(BenchError) as err:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            create_dataset(name, root=str(tmp_path / "does-not-exist"), **PREPROCESS).videos()
    _one_line(err.value)


@pytest.mark.parametrize("name", _dparams("test_dataset_ids_are_stable_and_unique"))
def test_dataset_ids_are_stable_and_unique(name: str, dataset_files: dict) -> None:
    d = _data(name, dataset_files)
    ids = [v.id for v in d["videos"]]
    assert ids and all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids), ids
    again = [v.id for v in _videos(_build_dataset(name, dataset_files), name)][: len(ids)]
    assert again == ids


@pytest.mark.parametrize("name", _dparams("test_dataset_clips_follow_preprocessing"))
def test_dataset_clips_follow_preprocessing(name: str, dataset_files: dict) -> None:
    d = _data(name, dataset_files)
    n = PREPROCESS["clip_len"]
    size = PREPROCESS["size"]
    for v in d["videos"]:
        clips = d["clips"][v.id]
        assert clips, f"{v.id}: no clips"
        assert [c.index for c in clips] == list(range(len(clips)))
        for c in clips:
            assert c.video_id == v.id
            assert tuple(c.frames.shape) == (3, n, size, size) and c.frames.dtype == torch.float32
            assert float(c.frames.min()) >= -1.0 and float(c.frames.max()) <= 1.0
            assert 1 <= c.valid <= n and c.start == c.index * n  # non-overlapping (clip_stride null)
            tail = c.frames[:, c.valid:]
            assert torch.equal(tail, c.frames[:, c.valid - 1 : c.valid].expand_as(tail)), "tail frames do not repeat the last real frame"
            src = tuple(getattr(c, "source_indices", ()) or ())
            if src:  # the source frame number of each of the T frames; padding repeats the last
                assert len(src) == n and all(isinstance(i, int) and i >= 0 for i in src), src
                assert all(a < b for a, b in zip(src[: c.valid], src[1 : c.valid])) and set(src[c.valid:]) <= {src[c.valid - 1]}, src
        assert sum(c.valid for c in clips) <= PREPROCESS["max_frames"]


@pytest.mark.parametrize("name", _dparams("test_dataset_is_deterministic"))
def test_dataset_is_deterministic(name: str, dataset_files: dict) -> None:
    d = _data(name, dataset_files)
    for v in d["videos"]:
        again = list(d["ds"].clips(v))
        first = d["clips"][v.id]
        assert len(again) == len(first)
        for a, b in zip(first, again):
            assert (a.video_id, a.index, a.start, a.valid, a.fps, a.source_fps) == (b.video_id, b.index, b.start, b.valid, b.fps, b.source_fps)
            assert torch.equal(a.frames, b.frames)


@pytest.mark.parametrize("name", _dparams("test_dataset_crop_is_centred"))
def test_dataset_crop_is_centred(name: str, dataset_files: dict) -> None:
    """crop=center equals the middle of the same frames with crop=none (within one pixel of rounding)."""
    d = _data(name, dataset_files)
    full_ds = _build_dataset(name, dataset_files, crop="none")
    size = PREPROCESS["size"]
    for v in d["videos"]:
        crop = d["clips"][v.id][0].frames
        full = next(iter(full_ds.clips(v))).frames
        fh, fw = full.shape[-2:]
        assert min(fh, fw) == size, (fh, fw)
        cy, cx = (fh - size) / 2, (fw - size) / 2
        offsets = [(y, x) for y in range(fh - size + 1) for x in range(fw - size + 1) if abs(y - cy) <= 1 and abs(x - cx) <= 1]
        assert any(torch.allclose(crop, full[..., y : y + size, x : x + size], atol=1e-6) for y, x in offsets), f"{v.id}: not a centre crop"


@pytest.mark.parametrize("name", _dparams("test_dataset_info_matches_schema"))
def test_dataset_info_matches_schema(name: str, dataset_files: dict) -> None:
    ds = _data(name, dataset_files)["ds"]
    info = ds.info()
    json.dumps(info, allow_nan=False)
    DatasetBlock.model_validate({**info, "config": dict(DATASET_CONFIGS[name])})
    assert info["plugin"] == _dplugin(name) and info["name"] == name
    assert info["preprocess"]["size"] == PREPROCESS["size"] and info["preprocess"]["clip_len"] == PREPROCESS["clip_len"]


def test_every_dataset_plugin_is_covered() -> None:
    assert DATASET_PLUGINS, "no dataset plugins registered"
    assert set(DATASET_PLUGINS) <= {c.get("plugin") for c in DATASET_CONFIGS.values()}


# ============================================================================= metrics
METRIC_PLUGINS = METRICS.plugins()
PROTOCOL_METRIC_OPTIONS = [resolve_group("protocol", p).get("metric_options") or {} for p in yaml_names("protocol")]
_KINDS = {"frame": FrameMetric, "clip": ClipMetric, "set": SetMetric}


def _kind(name: str) -> str | None:
    return getattr(getattr(METRIC_PLUGINS[name], "info", None), "kind", None)


def _metric_option_sets() -> dict[str, tuple[str, dict]]:
    """Every frame/clip metric with its defaults and with each protocol's options for it."""
    out: dict[str, tuple[str, dict]] = {}
    for name in sorted(METRIC_PLUGINS):
        if _kind(name) not in ("frame", "clip"):
            continue
        sets = [{}] + [dict(p[name]) for p in PROTOCOL_METRIC_OPTIONS if p.get(name)]
        for opts in sets:
            pid = name + ("[" + ",".join(f"{k}={v}" for k, v in sorted(opts.items())) + "]" if opts else "")
            out.setdefault(pid, (name, opts))
    return out


@pytest.mark.parametrize("name", _params("test_metric_declares_info", {n: n for n in METRIC_PLUGINS}))
def test_metric_declares_info(name: str) -> None:
    cls = METRIC_PLUGINS[name]
    info = getattr(cls, "info", None)
    assert isinstance(info, MetricInfo), f"{cls.__name__}.info is {info!r}"
    MetricInfo.model_validate(info.model_dump())
    assert info.label.strip() and info.reduction.strip()
    assert info.unit is None or info.unit.strip()
    assert isinstance(info.higher_is_better, bool)
    assert isinstance(info.precision, int) and 0 <= info.precision <= 12
    assert info.kind in _KINDS
    key, tol = parse_tolerance(f"{name}={info.tolerance}")
    assert key == name.lower() and tol is not None
    assert issubclass(cls, _KINDS[info.kind]), f"kind '{info.kind}' but {cls.__name__} is not a {_KINDS[info.kind].__name__}"
    if info.kind == "frame":
        assert not issubclass(cls, ClipMetric)


@pytest.mark.parametrize("name", _params("test_metric_builds_and_rejects_unknown_option", {n: n for n in METRIC_PLUGINS}))
def test_metric_builds_and_rejects_unknown_option(name: str, weights_cache) -> None:
    m = METRICS.build({"plugin": name}, device="cpu")
    assert isinstance(m, Metric) and m.kind == METRIC_PLUGINS[name].info.kind
    with pytest.raises(ConfigError) as err:
        METRICS.build({"plugin": name, "bogus": 1}, device="cpu")
    assert "bogus" in _one_line(err.value)


@pytest.mark.parametrize("spec", _params("test_frame_metric_contract", _metric_option_sets()))
def test_frame_metric_contract(spec: tuple[str, dict], weights_cache) -> None:
    name, opts = spec
    m = METRICS.build({"plugin": name, **opts}, device="cpu")
    json.dumps(m.spec(), allow_nan=False)
    real = H.smooth_video(2, 3, 32, 32, seed=1)
    noise = torch.randn(real.shape, generator=torch.Generator().manual_seed(2))
    fake = (real + 0.3 * noise).clamp(-1, 1)
    rows = 3 if m.kind == "frame" else 1
    values = {}
    for label, other in (("same", real.clone()), ("perturbed", fake)):
        stats = m.per_frame(real, other)
        assert torch.is_tensor(stats) and tuple(stats.shape) == (2, rows) and stats.dtype == torch.float64
        assert stats.device.type == "cpu" and torch.isfinite(stats).all()
        assert m.clip_stats(real, other) == stats.tolist()
        per_video = [m.reduce_video(row) for row in stats.tolist()]
        assert all(isinstance(v, float) and math.isfinite(v) for v in per_video)
        run = m.reduce_run(stats.flatten().tolist(), per_video)
        assert isinstance(run, float) and math.isfinite(run)
        values[label] = (per_video, run)
    better = (lambda a, b: a > b) if m.info.higher_is_better else (lambda a, b: a < b)
    assert better(values["same"][1], values["perturbed"][1]), values
    assert all(better(a, b) for a, b in zip(values["same"][0], values["perturbed"][0])), values


@pytest.mark.parametrize("name", _params("test_set_metric_contract", {n: n for n in sorted(METRIC_PLUGINS) if _kind(n) == "set"}))
def test_set_metric_contract(name: str, weights_cache) -> None:
    """update/compute, state_dict round trip (resume), and two shards merged (in the other order)
    equal to one pass. Tiny clips: FVD's I3D runs at 224x224 on the CPU."""
    key = f"contract-{uuid.uuid4().hex}"  # reference features are cached per key: fresh ones here

    def new() -> SetMetric:
        m = METRICS.build({"plugin": name}, device="cpu")
        m.set_reference_key(key)
        return m

    real = H.smooth_video(2, 9, 32, 32, seed=3)
    fake = (real + 0.3 * torch.randn(real.shape, generator=torch.Generator().manual_seed(4))).clamp(-1, 1)
    ids, order = ["v0#0", "v1#0"], ["v0", "v1"]
    tokens = torch.randint(0, 64, (2, 3, 4, 4), generator=torch.Generator().manual_seed(5))

    class Tok:  # a discrete tokenizer's facts, for metrics of the latent
        name, codebook_size = "tok", 64

    def update(m: SetMetric, rows: slice) -> None:
        if isinstance(m, LatentMetric):  # fed the tokenizer's latent (token ids), not pixels
            m.update_latent(tokens[rows], Tok(), 9 * 32 * 32, ids[rows])
        else:
            m.update(real[rows], fake[rows], ids[rows])

    one = new()
    json.dumps(one.spec(), allow_nan=False)
    update(one, slice(0, 1))
    shard_a = copy.deepcopy(one.state_dict())
    update(one, slice(1, 2))
    out = one.compute(order)
    assert isinstance(out, dict) and out["clips"] == 2
    assert isinstance(out["value"], float) and math.isfinite(out["value"]), out
    restored = new()
    restored.load_state_dict(copy.deepcopy(one.state_dict()))
    again = restored.compute(order)
    assert (again["value"], again["clips"]) == (out["value"], out["clips"])
    shard_b = new()
    update(shard_b, slice(1, 2))
    merged = new()
    merged.load_state_dict(shard_b.state_dict())
    merged.merge_state_dict(shard_a)
    got = merged.compute(order)
    assert (got["value"], got["clips"]) == (out["value"], out["clips"])


def test_every_metric_plugin_is_covered() -> None:
    assert METRIC_PLUGINS, "no metric plugins registered"
    runtime = {n for n, _ in _metric_option_sets().values()} | {n for n in METRIC_PLUGINS if _kind(n) == "set"}
    assert set(METRIC_PLUGINS) <= runtime
