"""The library under every search and training: search spaces (``api.spaces``), the
evaluator/executor/objective seam of the searches (``api.search``), tabular benchmarks
(``api.benchmarks``), language-model parts (``api.lm``), the final trainings' parts
(``api.train``) and run folders (``api.runs``)."""

__version__ = "0.1.0"
