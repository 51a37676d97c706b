"""ReadAhead: a video's frames read on a thread of their own, with the consumer's order, errors and early stop."""
from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok_bench.errors import VideoError
from vidtok_bench.video.decode import ReadAhead


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 60), depth=st.integers(1, 5))
def test_items_arrive_in_order(n, depth):
    assert list(ReadAhead(iter(range(n)), depth)) == list(range(n))


def test_an_error_arrives_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise VideoError("v.mp4", "decoding failed after 2 frames")

    it = ReadAhead(items(), 1)
    assert [next(it), next(it)] == [1, 2]
    with pytest.raises(VideoError, match="v.mp4: decoding failed after 2 frames"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_close_stops_reading_and_closes_the_source_on_its_thread():
    closed, read = [], []

    def items():
        try:
            for i in range(10_000):
                read.append(i)
                yield i
        finally:
            closed.append(threading.current_thread().name)

    it = ReadAhead(items(), 2)
    assert next(it) == 0
    it.close()
    assert closed == ["vidtok-read"] and len(read) < 10  # at most depth + a few ahead, never the whole source
    with pytest.raises(StopIteration):
        next(it)
