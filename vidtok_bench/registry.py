"""Plugin registry: classes registered with ``@register_tokenizer`` / ``register_dataset`` /
``register_metric``, found in ``vidtok_bench.{tokenizers,datasets,metrics}`` or through the
entry-point groups of the same names.

Named configurations (``conf/tokenizer/NAME.yaml`` ...) are resolved by :mod:`vidtok_bench.config`,
the one resolver; this module only knows plugin classes, which options each accepts, and how to
build one from a resolved config (rejecting unknown options the same way for every kind).
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from importlib.metadata import entry_points
from typing import Any, Callable, Iterator, TypeVar

from .errors import ConfigError, UnknownNameError, suggest

T = TypeVar("T")

ENTRY_POINT_GROUPS = {
    "tokenizer": "vidtok_bench.tokenizers",
    "dataset": "vidtok_bench.datasets",
    "metric": "vidtok_bench.metrics",
}
_BUILTIN_PACKAGES = dict(ENTRY_POINT_GROUPS)
#: keys of a resolved config that are not constructor options
_META_KEYS = ("plugin", "defaults")


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._plugins: dict[str, Any] = {}
        self._loaded = False

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

    def known_names(self) -> set[str]:
        """Plugin names known without importing any plugin module: those registered so far and the
        entry points' names (configuration errors answer fast; ``plugins()`` imports everything)."""
        return set(self._plugins) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUPS[self.kind])}

    def get(self, name: str) -> Any:
        self._load()
        if name not in self._plugins:
            raise UnknownNameError(f"{self.kind} plugin", name, list(self._plugins))
        return self._plugins[name]

    def build(self, cfg: dict[str, Any], **runtime: Any) -> Any:
        """Build a plugin from a resolved config (``plugin`` key + options); ``runtime`` adds values
        the runner decides (e.g. ``device``). Unknown options are a one-line ConfigError."""
        plugin = cfg.get("plugin")
        if not plugin:
            raise ConfigError(f"{self.kind} config '{cfg.get('name') or ''}' has no 'plugin' key")
        cls = self.get(plugin)
        options = {k: v for k, v in cfg.items() if k not in _META_KEYS and not k.startswith("_")}
        options.update(runtime)
        label = f"{self.kind} '{options.get('name') or plugin}'"
        check_options(label, cls, options)
        check_option_types(label, cls, options)
        try:
            return cls(**options)
        except (TypeError, ValueError) as exc:  # e.g. crf=abc: a value of the wrong type
            raise ConfigError(f"{label}: invalid option value ({exc})") from None


#: option annotations checked before a plugin is built, and the values each takes (bool is no int here)
_SCALARS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
}


def check_option_types(label: str, cls: type, options: dict[str, Any]) -> None:
    """Options a constructor annotates as exactly ``bool``, ``int`` or ``float`` (or ``X | None``) must be one:
    from Python, ``bool("false")`` is True and ``int("4x")`` fails without naming the option."""
    annotations = _option_annotations(cls)
    for key, value in options.items():
        parts = {p.strip() for p in annotations.get(key, "").split("|")}
        kinds = parts - {"None"}
        if len(kinds) != 1 or (scalar := _SCALARS.get(next(iter(kinds)))) is None:
            continue
        if value is None and "None" in parts:
            continue
        what, ok = scalar
        if not ok(value):
            raise ConfigError(f"{label}: {key}={value!r} must be {what}" + (" or null" if "None" in parts else ""))


def _constructor_params(cls: type) -> Iterator[inspect.Parameter]:
    """Keyword parameters of ``cls.__init__`` and of the base classes it forwards ``**kwargs`` to, subclass first."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        yield from (p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self")
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break


def _option_annotations(cls: type) -> dict[str, str]:
    """Constructor parameter annotations as written (strings under ``from __future__ import annotations``)."""
    out: dict[str, str] = {}
    for p in _constructor_params(cls):
        if p.annotation is not p.empty:
            out.setdefault(p.name, p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", ""))
    return out


def accepted_options(cls: type) -> set[str]:
    """Constructor keywords a plugin class accepts: its ``__init__`` parameters, and those of the
    base classes it forwards ``**kwargs`` to, plus ``extra_options`` a base declares (e.g. a dataset's
    preprocessing keys)."""
    return set(getattr(cls, "extra_options", ())) | {p.name for p in _constructor_params(cls)}


def check_options(label: str, cls: type, options: dict[str, Any]) -> None:
    valid = accepted_options(cls)
    unknown = sorted(set(options) - valid)
    if unknown:
        hints = "; ".join(f"'{k}'" + (f" ({h})" if (h := suggest(k, valid)) else "") for k in unknown)
        raise ConfigError(f"{label} has no option {hints}; valid options: {', '.join(sorted(valid))}")


TOKENIZERS = Registry("tokenizer")
DATASETS = Registry("dataset")
METRICS = Registry("metric")

register_tokenizer = TOKENIZERS.register
register_dataset = DATASETS.register
register_metric = METRICS.register


def create_tokenizer(name: str, **overrides: Any):
    """Build a tokenizer from its named config, e.g. ``create_tokenizer("identity", device="cpu")``."""
    from .config import resolve_group

    return TOKENIZERS.build(resolve_group("tokenizer", name, overrides))


def create_dataset(name: str, protocol: str = "vidtok", **overrides: Any):
    """Build a dataset adapter from its named config under a protocol, e.g.
    ``create_dataset("folder", root="videos/")`` — the same dataset ``vidtok-bench run dataset=folder
    dataset.root=videos/`` evaluates. As on the command line, a preprocessing key left unset (or None)
    takes the protocol's value; ``fps="native"`` / ``size="native"`` keep the source's, ``clip_len="whole"``
    makes each video one clip."""
    from .config import compose, plan_dataset

    cfg = compose([f"dataset={name}", f"protocol={protocol}"], throw_on_missing=False)
    cfg["dataset"].update(overrides)
    return plan_dataset(cfg).build()
