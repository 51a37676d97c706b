"""`vidtok-bench list tokenizers|datasets|metrics|protocols`."""
from __future__ import annotations

import argparse
from typing import Any

KINDS = ("tokenizers", "datasets", "metrics", "protocols")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered tokenizers, datasets, metrics or protocols")
    p.add_argument("kind", choices=KINDS)
    p.set_defaults(func=main)


def listed(group: str) -> list[str]:
    """Named configs, plus plugins no named config uses (e.g. from entry points); private ones hidden."""
    from .config import group_names, resolve_group, yaml_names

    configs = yaml_names(group)
    covered = {resolve_group(group, n).get("plugin") for n in configs}
    return [n for n in group_names(group) if not n.startswith("_") and (n in configs or n not in covered)]


def _tokenizer_row(name: str) -> list[Any]:
    from .config import resolve_group
    from .registry import TOKENIZERS

    cfg = resolve_group("tokenizer", name)
    try:
        info = TOKENIZERS.build(cfg).info(weights=False)  # never load or download weights for a listing
    except Exception as exc:  # a plugin that cannot be built still gets listed
        return [name, cfg.get("plugin", name), "?", "?", "?", "?", f"({type(exc).__name__}: {exc})"[:60]]
    comp = "x".join(map(str, info.get("compression", []))) or "?"
    bpp = info.get("nominal_bits_per_pixel")
    if bpp is None or bpp != bpp:
        rate = f"crf {info['crf']}" if info.get("crf") is not None else ""
    else:
        rate = f"{bpp:.4g}"
    return [name, info.get("plugin", ""), info.get("family", ""), comp, info.get("latent_channels", ""),
            info.get("codebook_size") or "", rate]


def main(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .config import resolve_group

    if args.kind == "tokenizers":
        rows = [_tokenizer_row(n) for n in listed("tokenizer")]
        print(tabulate(rows, headers=["name", "plugin", "family", "compression (t×h×w)", "latent ch", "codebook", "bits/pixel"], tablefmt="github"))
    elif args.kind == "datasets":
        rows = [[n, resolve_group("dataset", n).get("plugin", n)] for n in listed("dataset")]
        print(tabulate(rows, headers=["name", "plugin"], tablefmt="github"))
    elif args.kind == "metrics":
        from .registry import METRICS
        from .report.table import markdown_escape

        rows = []
        for n, cls in sorted(METRICS.plugins().items()):
            i = cls.info
            doc = (cls.__doc__ or "").strip().splitlines()
            rows.append([n, markdown_escape(i.label), i.unit or "", "higher" if i.higher_is_better else "lower", i.kind,
                         i.precision, i.tolerance, markdown_escape(doc[0]) if doc else ""])
        print(tabulate(rows, headers=["name", "label", "unit", "better", "kind", "decimals", "gate tolerance", "definition"],
                       tablefmt="github", disable_numparse=True))
    else:
        from .config import protocol_names

        print("\n".join(protocol_names()))
    return 0
