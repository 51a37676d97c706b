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
        describe = getattr(cls, "describe_config", None)
        info = describe(**kwargs) if describe else cls(**kwargs).info()
    except Exception as exc:  # a plugin that cannot be built still gets listed
        return [name, cfg.get("plugin", name), "?", "?", "?", f"({type(exc).__name__}: {exc})"[:60]]
    comp = "x".join(map(str, info.get("compression", []))) or "?"
    bpp = info.get("nominal_bits_per_pixel")
    return [name, info.get("plugin", ""), comp, info.get("latent_channels", ""), info.get("codebook_size") or "", "" if bpp is None else f"{bpp:.4g}"]


def main(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .registry import DATASETS, METRICS

    if args.kind == "tokenizers":
        from .registry import TOKENIZERS

        rows = [_tokenizer_row(n, c) for n, c in TOKENIZERS.named_configs().items()]
        print(tabulate(rows, headers=["name", "plugin", "compression (t×h×w)", "latent ch", "codebook", "bits/pixel"], tablefmt="github"))
    elif args.kind == "datasets":
        rows = [[n, c.get("plugin", n)] for n, c in DATASETS.named_configs().items()]
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
