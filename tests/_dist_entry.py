"""``vidtok-bench`` for tests launched under torchrun, with one test hook: ``VIDTOK_TEST_KILL=RANK:VIDEO[:FILE]``
makes that rank kill itself (SIGKILL, as an OOM killer or a lost node would) right after it stored
that video's record (once FILE exists, when given: so the test knows what the other ranks finished)."""
from __future__ import annotations

import os
import signal
import sys
import time


def _install_kill_hook() -> None:
    rank, _, rest = os.environ.get("VIDTOK_TEST_KILL", "").partition(":")
    video, _, wait_for = rest.partition(":")
    if not video or os.environ.get("RANK") != rank:
        return
    from vidtok_bench.stages.store import RunStore

    append = RunStore.append

    def append_then_die(self, record):
        append(self, record)
        if record.video == video:
            while wait_for and not os.path.exists(wait_for):
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)

    RunStore.append = append_then_die


if __name__ == "__main__":
    _install_kill_hook()
    from vidtok_bench.cli import main

    sys.exit(main())
