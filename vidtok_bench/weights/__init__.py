"""Metric network weights: pinned registry artifacts, verified, converted once into a local cache."""
