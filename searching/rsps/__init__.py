"""RSPS, random search with parameter sharing (Li & Talwalkar, UAI 2019), on the one
weight-sharing trainer (searching/oneshot)."""
