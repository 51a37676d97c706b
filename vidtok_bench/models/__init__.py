"""Model architectures (pure torch modules, no I/O)."""
