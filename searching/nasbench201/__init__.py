"""Discrete searches on the NAS-Bench-201 table: random search, regularised
evolution, REINFORCE and AutoShrink's shrinking, judged by the benchmark's ground truth."""
