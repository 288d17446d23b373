"""Fused candidates and CUDA graphs for AutoShrink's proxy training, off by default.

The k candidates of one step train as one fused model (:mod:`~searching.fused.executor`), and a
training step can be replayed as a CUDA graph (:mod:`~searching.fused.cuda_graph`). Every result
equals separate training up to float rounding. GPU speed is unmeasured, so both stay off.
"""


def accelerate(search, args):
    """The one hook from a search CLI into this package: ``--cuda_graphs`` replays the CNN
    proxy's training step as a CUDA graph, and ``--fused`` trains each step's candidates as one
    fused model (its step graphed too with ``--cuda_graphs``). Returns ``search``."""
    fused, graphs = getattr(args, "fused", False), getattr(args, "cuda_graphs", False)
    if graphs:
        from searching.cnn.proxy import CNNProxyEvaluator
        from searching.fused.graphed_proxy import GraphedCNNProxyEvaluator

        if isinstance(search.evaluator, CNNProxyEvaluator):
            search.evaluator = GraphedCNNProxyEvaluator.from_evaluator(search.evaluator)
    if fused:
        from searching.fused.executor import FusedExecutor

        search.executor = FusedExecutor(search.executor, cuda_graphs=graphs)
    return search
