"""Shared low-level code for AutoShrink: cell graphs, ops, network builders, datasets,
complexity counting, atomic I/O, search logs and plots, and candidate executors."""

__version__ = "0.1.0"
