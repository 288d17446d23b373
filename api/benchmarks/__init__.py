"""Tabular benchmarks: precomputed accuracies of every architecture of a space, so a search is
judged against ground truth and a query costs a look-up."""
