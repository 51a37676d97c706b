"""User-facing errors: each carries a one-line message the CLI prints without a traceback."""
from __future__ import annotations

import difflib
import errno
from pathlib import Path
from typing import Iterable


class BenchError(Exception):
    """Base class of every error the CLI reports as a single line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (as a cluster scheduler or ``timeout`` sends): unwinds like Ctrl-C, so finished work stays on disk."""


#: exit statuses of an interrupted command (128 + SIGINT / SIGTERM), as shells and schedulers read them
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def interrupted_status(exc: KeyboardInterrupt) -> tuple[int, str]:
    """Exit status and the words for how a command was stopped."""
    return (EXIT_TERMINATED, "terminated (SIGTERM)") if isinstance(exc, Terminated) else (EXIT_INTERRUPTED, "interrupted")


def on_sigterm(signum, frame) -> None:
    """Signal handler the CLI installs for every command: SIGTERM becomes :class:`Terminated`."""
    raise Terminated()


class ConfigError(BenchError):
    """An invalid configuration value or override."""


class UnknownNameError(ConfigError):
    """A tokenizer/dataset/metric name that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, sorted(known)
        hint = suggest(name, self.known)
        super().__init__(
            f"unknown {kind} '{name}'; {hint + ' ' if hint else ''}known {kind}s: {', '.join(self.known) or '(none)'}"
        )


def suggest(name: str, known: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` for a mistyped name, or ``""`` when no known name is close.

    For one-line errors about any unknown name or key, so a typo among many names is found at
    a glance: ``f"unknown key '{k}'" + (f"; {hint}" if (hint := suggest(k, keys)) else "")``.
    Closeness is difflib's ratio on lower-cased names (at least 0.6); the closest name is
    offered, with up to two more that are about as close (``'x', 'y' or 'z'``), in the
    known spelling.
    """
    by_lower: dict[str, str] = {}
    for k in known:
        by_lower.setdefault(str(k).lower(), str(k))
    target = str(name).lower()
    close = difflib.get_close_matches(target, list(by_lower), n=3, cutoff=0.6)
    if not close:
        return ""
    ranked = sorted((-difflib.SequenceMatcher(None, target, c).ratio(), c) for c in close)  # ties: by name
    picked = [f"'{by_lower[c]}'" for r, c in ranked if -r >= -ranked[0][0] - 0.02]
    names = picked[0] if len(picked) == 1 else f"{', '.join(picked[:-1])} or {picked[-1]}"
    return f"did you mean {names}?"


class DatasetError(BenchError):
    """A dataset that cannot be used at all (missing root, empty directory, ...)."""


class VideoError(BenchError):
    """One video that cannot be read; the runner records it as failed and goes on."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class CheckpointError(BenchError):
    """A checkpoint that is missing, unreadable or does not match the chosen config."""


class WeightsError(BenchError):
    """Metric network weights that cannot be found, fetched or verified."""


class InputShapeError(BenchError):
    """A video tensor whose shape a tokenizer cannot take."""


def check_choice(label: str, value: object, choices) -> object:
    """Return ``value`` if it is one of ``choices``, else raise ConfigError naming the label and options."""
    if value not in choices:
        raise ConfigError(f"{label}={value!r} is not one of {', '.join(map(str, choices))}")
    return value


def check_path(path: str | Path, what: str, error: type[BenchError] = BenchError, *, folder: bool = False) -> Path:
    """``path`` as a Path when it names an existing file (a directory with ``folder``), else ``error``
    in one line that names it and says which: ``"<path>: <what> file not found"``, ``"<path>: is a
    directory, not a <what> file"``, ``"<path>: <what> does not exist"`` or ``"<path>: <what> is not a
    directory"`` -- so a mistyped or swapped path is never reported as something else further on."""
    p = Path(path)
    if folder:
        if not p.is_dir():
            raise error(f"{p}: {what} {'is not a directory' if p.exists() else 'does not exist'}")
    elif p.is_dir():
        raise error(f"{p}: is a directory, not a {what} file")
    elif not p.is_file():
        raise error(f"{p}: {what} file not found")
    return p


#: errno values that mean the storage, not the path, refused the write (exit 5, like `run`'s EXIT_IO)
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


def os_error_line(exc: OSError) -> str:
    """An OSError as the CLI reports it: the file and the reason, without the errno prefix."""
    names = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    reason = exc.strerror or one_line(exc)
    return f"{' -> '.join(names)}: {reason}" if names else reason


def one_line(exc: BaseException) -> str:
    """An exception's message on one line: some span several (tarfile's ``"r:*"`` ReadError lists each method)."""
    return " ".join(str(exc).split())
