"""User-facing errors: each carries a one-line message the CLI prints without a traceback."""
from __future__ import annotations


class BenchError(Exception):
    """Base class of every error the CLI reports as a single line."""


class ConfigError(BenchError):
    """An invalid configuration value or override."""


def suggest(name: str, known) -> str:
    """'; did you mean 'x'?' for the closest known names (difflib), or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


class UnknownNameError(ConfigError):
    """A tokenizer/dataset/metric name that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} '{name}'{suggest(name, self.known)}; known {kind}s: {', '.join(self.known) or '(none)'}")


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
