"""Streaming video decoding, frame sampling and resizing (PyAV)."""
