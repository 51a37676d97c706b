"""Dataset adapters: one module per dataset; each registers with @register_dataset."""
if __name__ != "vidtok_bench.datasets":  # imported as top-level `datasets`: load the PyPI package instead
    from vidtok_bench._shadow import defer_to_real_package

    defer_to_real_package(__name__, __file__)
