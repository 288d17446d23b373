"""Import shim: ``graph-best`` pickles written before the space packages name this module.

The cell graph lives in :mod:`api.spaces.dag.graph`; ``pickle.load`` of an older file imports
``api.graph._rebuild_graph``, which is the same function.
"""
from api.spaces.dag.graph import CellGraph, _rebuild_graph  # noqa: F401
