"""Tokenizer plugins: one module per tokenizer family; each registers with @register_tokenizer."""
