"""vidtok-bench: benchmark and evaluation harness for video tokenizers."""
from __future__ import annotations

__version__ = "0.1.0"

import os  # noqa: E402

# Before torch loads libgomp: idle OpenMP threads sleep instead of spinning. On a CPU shared with
# other jobs, spinning threads wait on descheduled peers at every barrier; measured on the 2-core
# box under load, the full-size VidTok ran 1.9-2.6x faster with PASSIVE (see README, Performance).
# An explicit OMP_WAIT_POLICY wins; it has no effect if torch was imported first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .registry import create_dataset, create_tokenizer  # noqa: E402

__all__ = ["create_tokenizer", "create_dataset", "__version__"]
