"""Runnable examples of the project's device side (see examples/README.md)."""
