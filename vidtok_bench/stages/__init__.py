"""The runner's stages, each with one job: reading clips, running the model, scoring, storing
finished work and assembling the result. :mod:`vidtok_bench.runner` wires them together; sharded
and multi-process runs reuse them unchanged (per-clip records and set-metric state merge exactly).
"""
