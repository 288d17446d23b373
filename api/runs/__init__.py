"""Run folders: crash-safe writes, the flags and settings every run records and checks on
resume, data fingerprints, and the deterministic deaths the resume tests use."""
