"""vidtok-bench: benchmark and evaluation harness for video tokenizers."""
from __future__ import annotations

__version__ = "0.1.0"

from .registry import create_dataset, create_tokenizer  # noqa: E402

__all__ = ["create_tokenizer", "create_dataset", "__version__"]
