"""Composing the run configuration with Hydra (compose API, so errors stay one line)."""
from __future__ import annotations

import re
from typing import Any

from .errors import ConfigError, UnknownNameError
from .registry import DATASETS, TOKENIZERS

GROUPS = {"tokenizer": TOKENIZERS, "dataset": DATASETS}


def _store_plugin_configs() -> None:
    """Entry-point plugins without a YAML get a minimal node so `tokenizer=NAME` works."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, registry in GROUPS.items():
        yaml_names = set(registry.yaml_configs())
        for name in registry.plugins():
            if name not in yaml_names:
                node: dict[str, Any] = {"plugin": name}
                if group == "dataset":
                    from .runner import PREPROCESS_KEYS

                    node.update({k: None for k in PREPROCESS_KEYS})
                cs.store(group=group, name=name, node=node)


def protocol_names() -> list[str]:
    import importlib.resources

    root = importlib.resources.files("vidtok_bench.conf").joinpath("protocol")
    return sorted(e.name[:-5] for e in root.iterdir() if e.name.endswith(".yaml"))


def compose(overrides: list[str]) -> dict[str, Any]:
    """Resolve ``conf/config.yaml`` with command-line overrides into a plain dict."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    _check_group_names(overrides)
    _store_plugin_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="vidtok_bench.conf", version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=overrides, return_hydra_config=True)
        choices = dict(cfg.hydra.runtime.choices)
        with open_dict(cfg):
            del cfg["hydra"]
        out = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except (HydraException, OmegaConfBaseException) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        m = re.search(r"Missing mandatory value: (\S+)", str(exc))
        if m:
            key = getattr(exc, "full_key", None) or m.group(1)
            msg = f"{key} must be set (e.g. {key}=PATH)"
        raise ConfigError(f"invalid configuration: {msg}") from None
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(out, dict)
    # a named config's name is the group option chosen (e.g. trilinear_488), unless set explicitly
    for group in ("tokenizer", "dataset"):
        if isinstance(out.get(group), dict) and not out[group].get("name"):
            out[group]["name"] = choices.get(group)
    return out


def _check_group_names(overrides: list[str]) -> None:
    """Unknown tokenizer/dataset/protocol names get a message listing the known ones."""
    for ov in overrides:
        key, sep, value = ov.partition("=")
        if not sep:
            continue
        key = key.lstrip("+~")
        if key in GROUPS:
            known = GROUPS[key].names()
            if value not in known:
                raise UnknownNameError(key, value, known)
        elif key == "protocol":
            known = protocol_names()
            if value not in known:
                raise UnknownNameError("protocol", value, known)
