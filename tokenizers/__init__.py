"""Tokenizer plugins: one module per tokenizer family; each registers with @register_tokenizer."""
if __name__ != "vidtok_bench.tokenizers":  # imported as top-level `tokenizers`: load the PyPI package instead
    from vidtok_bench._shadow import defer_to_real_package

    defer_to_real_package(__name__, __file__)
