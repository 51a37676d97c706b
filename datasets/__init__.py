"""Dataset adapters: one module per dataset; each registers with @register_dataset."""
