"""The DARTS CNN cell space (8 ops, normal + reduction cells) and its networks."""
