"""`pytest -q` stays off the network: tests marked `network` run only with VIDTOK_BENCH_TEST_NETWORK=1."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import NETWORK_ENV

pytest_plugins = ["pytester"]

PROBE = '''
import pytest

@pytest.mark.network
def test_would_reach_the_index():
    raise AssertionError("ran")

def test_offline():
    pass
'''


@pytest.fixture
def probe(pytester: pytest.Pytester) -> pytest.Pytester:
    """A throw-away test folder holding this suite's real conftest.py (the hook under test) and a probe."""
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    network: needs a package registry\n")
    pytester.makepyfile(test_probe=PROBE)
    return pytester


def test_network_tests_skip_by_default_naming_the_variable(probe, monkeypatch):
    monkeypatch.delenv(NETWORK_ENV, raising=False)
    result = probe.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([f"*contacts a package registry; set {NETWORK_ENV}=1 to run it*"])


def test_network_tests_run_when_opted_in(probe, monkeypatch):
    monkeypatch.setenv(NETWORK_ENV, "1")
    result = probe.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)  # the probe raised: it ran
