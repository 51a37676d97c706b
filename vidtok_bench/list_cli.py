"""`vidtok-bench list tokenizers|datasets|metrics|protocols`."""
from __future__ import annotations

import argparse
from typing import Any

KINDS = ("tokenizers", "datasets", "metrics", "protocols")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered tokenizers, datasets, metrics or protocols")
    p.add_argument("kind", choices=KINDS)
    p.set_defaults(func=main)


def _tokenizer_row(name: str, cfg: dict[str, Any]) -> list[Any]:
    from .registry import TOKENIZERS

    try:
        cls, kwargs = TOKENIZERS.resolve(name)
        info = cls(**kwargs).info(weights=False)  # never load or download weights for a listing
    except Exception as exc:  # a plugin that cannot be built still gets listed
        return [name, cfg.get("plugin", name), "?", "?", "?", f"({type(exc).__name__}: {exc})"[:60]]
    comp = "x".join(map(str, info.get("compression", []))) or "?"
    bpp = info.get("nominal_bits_per_pixel")
    if bpp is None or bpp != bpp:
        rate = f"crf {info['crf']}" if info.get("crf") is not None else ""
    else:
        rate = f"{bpp:.4g}"
    return [name, info.get("plugin", ""), comp, info.get("latent_channels", ""), info.get("codebook_size") or "", rate]


def _listed(registry) -> dict[str, dict[str, Any]]:
    """Named configs, plus plugins that have no named config of their own (e.g. from entry points)."""
    yaml_cfgs = registry.yaml_configs()
    covered = {c.get("plugin") for c in yaml_cfgs.values()}
    out = dict(yaml_cfgs)
    for name in registry.plugins():
        if name not in covered and not name.startswith("_"):
            out.setdefault(name, {"plugin": name})
    return out


def main(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .registry import DATASETS, METRICS

    if args.kind == "tokenizers":
        from .registry import TOKENIZERS

        rows = [_tokenizer_row(n, c) for n, c in _listed(TOKENIZERS).items()]
        print(tabulate(rows, headers=["name", "plugin", "compression (t×h×w)", "latent ch", "codebook", "bits/pixel"], tablefmt="github"))
    elif args.kind == "datasets":
        rows = [[n, c.get("plugin", n)] for n, c in _listed(DATASETS).items()]
        print(tabulate(rows, headers=["name", "plugin"], tablefmt="github"))
    elif args.kind == "metrics":
        rows = []
        for n, cls in sorted(METRICS.plugins().items()):
            doc = (cls.__doc__ or (cls.__module__ and __import__(cls.__module__, fromlist=["x"]).__doc__) or "").strip().splitlines()
            rows.append([n, "higher" if cls.higher_is_better else "lower", doc[0] if doc else ""])
        print(tabulate(rows, headers=["name", "better", "definition"], tablefmt="github"))
    else:
        from .config import protocol_names

        print("\n".join(protocol_names()))
    return 0
