"""Hydra configuration (installed as package data)."""
