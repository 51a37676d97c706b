"""The one configuration resolver, used by ``run``, the Python API and ``list``.

Named configs (``conf/{tokenizer,dataset,protocol}/NAME.yaml``) are composed by Hydra, and only
by Hydra: ``vidtok-bench run tokenizer=X tokenizer.k=v``, ``create_tokenizer("X", k=v)`` and
``vidtok-bench list`` all read the same composed nodes, so a name with the same overrides always
means the same values. :func:`plan_run` then turns a composed config into a validated
:class:`RunPlan` (every numeric option checked before any work; preprocessing resolved from the
dataset's keys over the protocol's; metric options from the protocol).
"""
from __future__ import annotations

import copy
import functools
import importlib.resources
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import PREPROCESS_KEYS
from .errors import ConfigError, UnknownNameError, check_choice, suggest

#: config groups with a plugin registry behind them
PLUGIN_GROUPS = ("tokenizer", "dataset")
GROUPS = (*PLUGIN_GROUPS, "protocol")
#: dataset keys that locate data on one machine and so stay out of the data fingerprint (a replayed
#: manifest's content hash goes in instead of its path)
LOCATION_KEYS = ("root", "manifest")
#: dataset keys that say how fast the frames are made, never which: a run with other values resumes, merges and
#: compares as the same run (threads converting/resizing one video's frames)
SPEED_KEYS = ("workers",)
#: tokenizer keys that say where it runs and where its weights were read from: out of the config
#: fingerprint, which records the weights' sha256 instead
TOKENIZER_LOCATION_KEYS = ("device", "checkpoint")
#: options that change how a run proceeds, not what it computes: out of the default output directory's hash
RUNTIME_KEYS = ("output_dir", "progress", "resume", "overwrite", "prefetch", "workers", "shard", "dist_timeout_s", "overlap")
#: the same as override keys (with the dataset's SPEED_KEYS): out of a sweep job's directory name, so a sweep
#: rerun with other values of them resumes the same jobs
RUNTIME_OVERRIDE_KEYS = (*RUNTIME_KEYS, *(f"dataset.{k}" for k in SPEED_KEYS))


def _registry(group: str):
    from .registry import DATASETS, TOKENIZERS

    return {"tokenizer": TOKENIZERS, "dataset": DATASETS}[group]


def yaml_names(group: str) -> list[str]:
    """Named configs shipped in the package for a group (file names; no plugin is loaded)."""
    root = importlib.resources.files("vidtok_bench.conf").joinpath(group)
    return sorted(e.name[:-5] for e in root.iterdir() if e.name.endswith(".yaml"))


def group_names(group: str, load_plugins: bool = True) -> list[str]:
    """Every name a group accepts: its YAML configs, plus plugins that have none (e.g. from entry points).
    ``load_plugins=False`` lists the names known without importing plugin modules (fast)."""
    names = set(yaml_names(group))
    if group in PLUGIN_GROUPS:
        reg = _registry(group)
        names |= set(reg.plugins()) if load_plugins else reg.known_names()
    return sorted(names)


def _store_plugin_configs() -> None:
    """Plugins without a YAML (entry points, plugins registered in-process) get a minimal node so
    ``tokenizer=NAME`` works for them too; no plugin module is imported for it."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group in PLUGIN_GROUPS:
        have = set(yaml_names(group))
        for name in _registry(group).known_names():
            if name not in have:
                node: dict[str, Any] = {"plugin": name}
                if group == "dataset":
                    node.update({k: None for k in PREPROCESS_KEYS})
                cs.store(group=group, name=name, node=node)


def _hydra_compose(overrides: list[str], throw_on_missing: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    _store_plugin_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="vidtok_bench.conf", version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
        choices = dict(cfg.hydra.runtime.choices)
        with open_dict(cfg):
            del cfg["hydra"]
        out = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=throw_on_missing)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"invalid configuration: {_hydra_message(exc)}") from None
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(out, dict)
    return out, choices


def _hydra_message(exc: Exception) -> str:
    text = str(exc).strip()
    m = re.search(r"Missing mandatory value: (\S+)", text)
    if m:
        key = getattr(exc, "full_key", None) or m.group(1)
        return f"{key} must be set (e.g. {key}=PATH)"
    m = re.search(r"Could not override '([^']+)'", text)
    if m:
        return _unknown_key_message(m.group(1))
    return text.splitlines()[0] if text else type(exc).__name__


def _unknown_key_message(key: str) -> str:
    head, _, rest = key.partition(".")
    if rest and head in GROUPS:  # a key inside a group's node (protocol.X): name that node's keys, not the top level
        keys = sorted({k for node in _group_nodes(head).values() for k in node})
        hint = suggest(rest, keys)
        return f"unknown key '{key}'{f' ({hint})' if hint else ''}; {head} keys: {', '.join(keys)}"
    top = _top_level_keys()
    hint = suggest(key, top)
    return f"unknown key '{key}'{f' ({hint})' if hint else ''}; valid keys: {', '.join(top)} (and tokenizer.*, dataset.*, protocol.*)"


@functools.lru_cache(maxsize=1)
def _top_level_keys() -> list[str]:
    import yaml

    text = importlib.resources.files("vidtok_bench.conf").joinpath("config.yaml").read_text()
    return sorted(k for k in (yaml.safe_load(text) or {}) if k != "defaults") + list(GROUPS)


def _plugin_key_overrides(overrides: list[str]) -> list[str]:
    """``tokenizer.k=v``, ``dataset.k=v`` and ``protocol.metric_options.M.k=v`` may name any option the
    plugin accepts, not only those its YAML lists: they are forced in (``++``) and checked against the
    plugin's constructor instead, the same way for every kind."""
    out = []
    for ov in overrides:
        key = ov.partition("=")[0]
        plugin_key = (key.split(".")[0] in PLUGIN_GROUPS and "." in key) or key.startswith("protocol.metric_options.")
        if not key.startswith(("+", "~")) and plugin_key:
            ov = "++" + ov
        out.append(ov)
    return out


def compose(overrides: list[str], throw_on_missing: bool = True) -> dict[str, Any]:
    """Resolve ``conf/config.yaml`` with command-line overrides into a plain dict (``throw_on_missing``
    False leaves mandatory ``???`` values for the caller to fill, as the Python API does)."""
    _check_group_names(overrides)
    out, choices = _hydra_compose(_plugin_key_overrides(list(overrides)), throw_on_missing)
    check_top_level(out)
    return name_groups(out, choices)


def check_top_level(out: dict[str, Any]) -> None:
    """Hydra lets ``+key=v`` add keys nothing reads and ``~group`` delete a group every run needs: both are
    configuration errors here, as ``key=v`` for an unknown key already is."""
    for key in out:
        if key not in _top_level_keys():
            raise ConfigError(_unknown_key_message(key))
    for group in GROUPS:
        node = out.get(group)
        if not isinstance(node, dict) or (group in PLUGIN_GROUPS and "plugin" not in node):  # deleted, maybe re-added in part
            raise ConfigError(f"{group} is required (choose one: {group}=NAME; `vidtok-bench list {group}s`)")


def name_groups(out: dict[str, Any], choices: dict[str, Any]) -> dict[str, Any]:
    """A named config's name is the group option chosen (e.g. trilinear_488), unless set explicitly."""
    for group in GROUPS:
        if isinstance(out.get(group), dict) and not out[group].get("name"):
            out[group]["name"] = choices.get(group)
    return out


@functools.lru_cache(maxsize=None)
def _group_nodes(group: str) -> dict[str, dict[str, Any]]:
    """Every option of a group composed by Hydra in one call (same values as ``group=NAME`` in a run)."""
    names = group_names(group)
    # mandatory values (root: ???) stay unset here; the plugin says what it needs when built
    out, _ = _hydra_compose([f"+{group}@_all_.{_key(n)}={n}" for n in names], throw_on_missing=False)
    nodes = out.get("_all_") or {}
    return {n: {**nodes[_key(n)], "name": n} for n in names}


def _key(name: str) -> str:
    return "k_" + re.sub(r"\W", "_", name)


def resolve_group(group: str, name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The composed node of ``group=name`` with ``overrides`` applied (a fresh copy)."""
    nodes = _group_nodes(group)
    if name not in nodes:
        raise UnknownNameError(group, name, list(nodes))
    node = copy.deepcopy(nodes[name])
    node.update(overrides or {})
    return node


def _check_group_names(overrides: list[str]) -> None:
    """Unknown tokenizer/dataset/protocol names get a message naming the closest and the known ones,
    without importing any plugin module (a name is a config, or a plugin registered or from an entry point)."""
    for ov in overrides:
        key, sep, value = ov.partition("=")
        key = key.lstrip("+~")
        if sep and key in GROUPS and value not in (known := group_names(key, load_plugins=False)):
            raise UnknownNameError(key, value, known)


# ----------------------------------------------------------------------------- validated plan
def check_int(key: str, value: Any, minimum: int | None = None, allow_none: bool = False) -> int | None:
    """An integer option (bools and non-integral numbers refused) with a lower bound: one-line ConfigError."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)
    if not ok:
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ConfigError(f"{key}={value!r} must be an integer{bound}" + (" or null" if allow_none else ""))
    return int(value)


def check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be true or false")
    return value


@dataclass
class DatasetPlan:
    """A dataset's constructor options with preprocessing resolved (dataset keys over the protocol's)."""

    args: dict[str, Any]

    def build(self):
        from .registry import DATASETS

        return DATASETS.build(self.args)

    def fingerprint_view(self) -> dict[str, Any]:
        view = {k: v for k, v in self.args.items() if k not in LOCATION_KEYS}
        # hashed as their default (not dropped), so fingerprints stay those of the results recorded before
        view.update({k: None for k in SPEED_KEYS if k in view})
        if self.args.get("manifest") not in (None, "", "???"):
            # dataset=manifest: what the file holds, and the frame settings the replay takes from it
            from .manifest import load_manifest, manifest_sha256

            m = load_manifest(self.args["manifest"])
            view = {**m.frame_settings(view), "manifest_sha256": manifest_sha256(m)}
        if self.args.get("list") not in (None, "", "???"):
            # dataset=video_list: the list's frame ranges choose the frames, so an edited list is other data
            view["list_sha256"] = _file_sha256(self.args["list"])
        return view


def _file_sha256(path: str) -> str | None:
    """A file's sha256, None when it cannot be read (the dataset then fails with its own message)."""
    from .hashing import sha256_file

    try:
        return sha256_file(Path(str(path)).expanduser())
    except OSError:
        return None


def resolve_preprocess(dataset: dict[str, Any], protocol: dict[str, Any], preferred_clip_len: int | None) -> dict[str, Any]:
    """Dataset keys override the protocol's; ``clip_len: auto`` is the tokenizer's own clip length,
    ``whole`` one clip per video; ``native`` fps/size keep the source's."""
    out: dict[str, Any] = {}
    for key in PREPROCESS_KEYS:
        v = dataset.get(key)
        out[key] = protocol.get(key) if v is None else v
    if out["clip_len"] == "auto":
        out["clip_len"] = preferred_clip_len
    elif out["clip_len"] == "whole":
        out["clip_len"] = None
    for key in ("fps", "size"):
        if out[key] == "native":
            out[key] = None
    # null sampling/crop/resize/tail (a protocol without them) take the Preprocess defaults
    return {k: v for k, v in out.items() if v is not None or k not in ("sampling", "crop", "resize", "tail")}


def plan_dataset(cfg: dict[str, Any], tokenizer: Any = None) -> DatasetPlan:
    """Dataset options of a composed config; ``clip_len: auto`` asks ``tokenizer`` (default: the config's)."""
    ds = dict(cfg["dataset"])
    clip_len = ds.get("clip_len") if ds.get("clip_len") is not None else cfg["protocol"].get("clip_len")
    if tokenizer is None and clip_len == "auto":
        from .registry import TOKENIZERS

        tokenizer = TOKENIZERS.build(cfg["tokenizer"])
    pre = resolve_preprocess(ds, cfg["protocol"], tokenizer.preferred_clip_len if tokenizer is not None else None)
    args = {k: v for k, v in ds.items() if k not in PREPROCESS_KEYS and k != "defaults"}
    args.update(pre)
    return DatasetPlan(args)


@dataclass
class RunPlan:
    """A validated run configuration: what ``run`` does, decided before any video is decoded."""

    cfg: dict[str, Any]
    device: Any  # torch.device
    precision: Any  # Precision
    batch_size: int
    limit: int | None
    seed: int
    prefetch: int
    progress: bool
    resume: bool
    overwrite: bool
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_dir: Path | None = None
    #: (I, N): evaluate part I of N (``shard=I/N``; torchrun ranks set it too)
    shard: tuple[int, int] | None = None
    #: seconds before a silent rank or a stuck collective ends a torchrun job
    dist_timeout_s: int = 600
    #: videos decoded at once by the reader's threads (results never depend on it)
    workers: int = 1
    #: where the protocol's resize and crop run: 'cpu' (while decoding) or 'device' (the run's device,
    #: on uint8 clips); ``preprocess_on=auto`` resolved: device when the run's device is a GPU
    preprocess_on: str = "cpu"
    #: score batch i in a worker thread while the model runs batch i+1 (same values either way);
    #: None: on CPU and CUDA runs (on an H100 a bf16 VidTok run with PSNR/SSIM/LPIPS took 14.5 s instead of
    #: 30.0 s), except CUDA with ``precision=tf32``. On CUDA it scores on a second CUDA stream; an explicit
    #: ``overlap=true`` is refused with ``precision=tf32``, whose process-wide TF32 flags the metrics'
    #: full-fp32 scope would interleave with
    overlap: bool | None = None

    @property
    def overlap_scoring(self) -> bool:
        if self.overlap is not None:
            return bool(self.overlap)
        if self.device.type == "cuda":
            return self.precision.name != "tf32"
        return self.device.type == "cpu"

    @property
    def protocol(self) -> dict[str, Any]:
        return self.cfg["protocol"]


#: ``preprocess_on`` values; auto: the run's device when it is a GPU, else the CPU
PREPROCESS_ON = ("auto", "cpu", "device")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_reader_workers() -> int:
    """Videos decoded at once when ``workers`` is null: one core left for the model and the metrics, at most 4."""
    return max(1, min(4, available_cpus() - 1))


def resolve_preprocess_on(value: Any, device: Any) -> str:
    """'cpu' or 'device' for a ``preprocess_on`` value and the run's (resolved) device."""
    check_choice("preprocess_on", value, PREPROCESS_ON)
    if value == "auto":
        return "device" if device.type == "cuda" else "cpu"
    return str(value)


def torch_device(name: Any):
    """``name`` as a torch.device, refused in one line when it is not a device or names CUDA on a machine without
    it (torch would say so only at the first tensor op, deep in a model). For plugins built from Python."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={name!r} is not a valid device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device='{name}' requested but CUDA is not available on this machine; use device=cpu")
    return dev


def resolve_device(name: str | None):
    """A run's device: ``auto``/None picks CUDA when there is one; only cpu and cuda[:N]."""
    import torch

    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch_device(name)
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={name!r}: only cpu and cuda are supported")
    return dev


def plan_run(cfg: dict[str, Any]) -> RunPlan:
    """Validate every run-level option of a composed config (one-line ConfigError, before any work)."""
    from .distributed import parse_shard  # torch-free

    # the plain options first: a typo there answers before torch or any plugin is imported
    plain = dict(batch_size=check_int("batch_size", cfg.get("batch_size", 1), 1),
                 limit=check_int("limit", cfg.get("limit"), 0, allow_none=True),
                 seed=check_int("seed", cfg.get("seed", 42)), prefetch=check_int("prefetch", cfg.get("prefetch", 4), 1),
                 progress=check_bool("progress", cfg.get("progress", True)),
                 resume=check_bool("resume", cfg.get("resume", True)),
                 overwrite=check_bool("overwrite", cfg.get("overwrite", False)),
                 shard=parse_shard(cfg.get("shard")),
                 dist_timeout_s=check_int("dist_timeout_s", cfg.get("dist_timeout_s", 600), 1),
                 workers=check_int("workers", cfg.get("workers"), 1, allow_none=True) or default_reader_workers(),
                 overlap=cfg.get("overlap"))
    preprocess_on = cfg.get("preprocess_on", "auto")
    check_choice("preprocess_on", preprocess_on, PREPROCESS_ON)
    if plain["overlap"] is not None:
        plain["overlap"] = check_bool("overlap", plain["overlap"])
    from .precision import get_precision
    from .registry import METRICS, check_options
    from .scoring import Scoring

    names = cfg.get("metrics") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"metrics={names!r} must be a list of metric names, e.g. 'metrics=[psnr,ssim]'")
    if len(set(names)) != len(names):
        raise ConfigError(f"metrics={names} lists a metric twice")
    protocol = cfg["protocol"]
    options = protocol.get("metric_options") or {}
    metrics = {}
    for name in names:
        cls = METRICS.get(name)
        opts = dict(options.get(name) or {})
        check_options(f"metric '{name}' (protocol {protocol.get('name')}.metric_options.{name})", cls, opts)
        metrics[name] = opts
    Scoring.from_protocol(protocol)  # validates the scoring block
    out = cfg.get("output_dir")
    device = resolve_device(cfg.get("device"))
    if plain["overlap"] and device.type == "cuda" and str(cfg.get("precision") or "fp32") == "tf32":
        raise ConfigError("overlap=true with precision=tf32 on CUDA: TF32 is a process-wide flag the metrics turn "
                          "off while the model turns it on; use precision=fp32|bf16|fp16 or overlap=false")
    return RunPlan(
        cfg=cfg,
        device=device,
        precision=get_precision(cfg.get("precision")),
        metrics=metrics,
        **plain,
        preprocess_on=resolve_preprocess_on(preprocess_on, device),
        output_dir=Path(out) if out else None,
    )


def protocol_names() -> list[str]:
    return yaml_names("protocol")

