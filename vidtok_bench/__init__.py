"""vidtok-bench: benchmark and evaluation harness for video tokenizers."""
from __future__ import annotations

__version__ = "0.1.0"

import os  # noqa: E402

# Before torch loads libgomp: idle OpenMP threads sleep instead of spinning. On a CPU shared with
# other jobs, spinning threads wait on descheduled peers at every barrier; measured on the 2-core
# box under load, the full-size VidTok ran 1.9-2.6x faster with PASSIVE (see docs/performance.md).
# An explicit value of either variable below wins; neither has an effect if torch was imported first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Before torch's first allocation: large CPU tensors go on 2 MB transparent huge pages (PyTorch's own
# switch; it only asks the kernel, where THP is "never" nothing changes). Every fresh activation of a
# 640x272 clip is a new mmap that the kernel must fault in 4 KB at a time: without it, page faults took
# half of a LayerNorm's or SiLU's time, and the CPU workload ran 1.4x slower (docs/performance.md).
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from .registry import create_dataset, create_tokenizer  # noqa: E402

__all__ = ["create_tokenizer", "create_dataset", "__version__"]
