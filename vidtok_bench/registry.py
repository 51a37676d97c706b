"""Plugin registry: built-in plugins, named YAML configs and entry points.

Two layers, as in lm-evaluation-harness:

* a *plugin* is a class registered with ``@register_tokenizer("name")`` (or
  ``register_dataset`` / ``register_metric``), found in ``vidtok_bench.tokenizers``,
  ``vidtok_bench.datasets``, ``vidtok_bench.metrics`` or through the entry-point groups
  ``vidtok_bench.tokenizers``, ``vidtok_bench.datasets`` and ``vidtok_bench.metrics``;
* a *named config* is ``conf/tokenizer/NAME.yaml`` (or ``conf/dataset/NAME.yaml``) holding
  ``plugin: <plugin name>`` plus constructor arguments. ``create_tokenizer(NAME, **overrides)``
  merges overrides into it. A plugin without a YAML is usable by its plugin name.
"""
from __future__ import annotations

import copy
import importlib
import importlib.resources
import pkgutil
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

import yaml

from .errors import ConfigError, UnknownNameError

T = TypeVar("T")

ENTRY_POINT_GROUPS = {
    "tokenizer": "vidtok_bench.tokenizers",
    "dataset": "vidtok_bench.datasets",
    "metric": "vidtok_bench.metrics",
}
_BUILTIN_PACKAGES = {
    "tokenizer": "vidtok_bench.tokenizers",
    "dataset": "vidtok_bench.datasets",
    "metric": "vidtok_bench.metrics",
}
_CONF_GROUPS = {"tokenizer": "tokenizer", "dataset": "dataset"}


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._plugins: dict[str, Any] = {}
        self._loaded = False
        self._yaml: dict[str, dict[str, Any]] | None = None

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._plugins and self._plugins[name] is not obj:
                raise ValueError(f"{self.kind} plugin '{name}' registered twice")
            self._plugins[name] = obj
            try:
                obj.plugin_name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(_BUILTIN_PACKAGES[self.kind])
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg.__name__}.{mod.name}")
        for ep in entry_points(group=ENTRY_POINT_GROUPS[self.kind]):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plugin must not break the tool
                import warnings

                warnings.warn(f"could not load {self.kind} plugin '{ep.name}' from entry point {ep.value}: {exc}")
                continue
            if ep.name not in self._plugins:
                self.register(ep.name)(obj)

    def plugins(self) -> dict[str, Any]:
        self._load()
        return dict(self._plugins)

    def get(self, name: str) -> Any:
        self._load()
        if name not in self._plugins:
            raise UnknownNameError(f"{self.kind} plugin", name, list(self._plugins))
        return self._plugins[name]

    # ---------------------------------------------------------------- named configs
    def yaml_configs(self) -> dict[str, dict[str, Any]]:
        """name -> config dict, from conf/<group>/*.yaml (read once: they are package data)."""
        if self._yaml is None:
            self._yaml = {}
            group = _CONF_GROUPS.get(self.kind)
            if group:
                root = importlib.resources.files("vidtok_bench.conf").joinpath(group)
                for entry in sorted(root.iterdir(), key=lambda e: e.name):
                    if entry.name.endswith(".yaml"):
                        self._yaml[entry.name[:-5]] = yaml.safe_load(entry.read_text()) or {}
        return copy.deepcopy(self._yaml)  # callers may merge overrides into nested values

    def named_configs(self) -> dict[str, dict[str, Any]]:
        """name -> config dict: the YAML configs, plus plugins that have none."""
        out = self.yaml_configs()
        for name in self.plugins():
            out.setdefault(name, {"plugin": name})
        return out

    def names(self) -> list[str]:
        return sorted(self.named_configs()) if self.kind in _CONF_GROUPS else sorted(self.plugins())

    def resolve(self, name: str, overrides: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Return (plugin class, constructor kwargs) for a named config."""
        configs = self.named_configs()
        if name not in configs:
            raise UnknownNameError(self.kind, name, list(configs))
        cfg = {k: v for k, v in configs[name].items() if not k.startswith("_") and k != "defaults"}
        cfg.update(overrides or {})
        return build_args(self, cfg, default_name=name)


def build_args(registry: Registry, cfg: dict[str, Any], default_name: str | None = None) -> tuple[Any, dict[str, Any]]:
    cfg = dict(cfg)
    plugin = cfg.pop("plugin", None) or default_name
    if plugin is None:
        raise ConfigError(f"{registry.kind} config has no 'plugin' key")
    cls = registry.get(plugin)
    cfg.setdefault("name", default_name or plugin)
    return cls, cfg


TOKENIZERS = Registry("tokenizer")
DATASETS = Registry("dataset")
METRICS = Registry("metric")

register_tokenizer = TOKENIZERS.register
register_dataset = DATASETS.register
register_metric = METRICS.register


def instantiate(registry: Registry, cfg: dict[str, Any]) -> Any:
    """Build a plugin from a resolved config dict (e.g. Hydra's ``cfg.tokenizer``)."""
    cls, kwargs = build_args(registry, cfg, default_name=cfg.get("name"))
    return cls(**kwargs)


def create_tokenizer(name: str, **overrides: Any):
    """Build a tokenizer from its named config, e.g. ``create_tokenizer("identity", device="cpu")``."""
    cls, kwargs = TOKENIZERS.resolve(name, overrides)
    return cls(**kwargs)


def create_dataset(name: str, **overrides: Any):
    """Build a dataset adapter from its named config, e.g. ``create_dataset("folder", root="videos/")``."""
    cls, kwargs = DATASETS.resolve(name, overrides)
    return cls(**kwargs)
