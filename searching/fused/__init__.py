"""Fused candidates and CUDA graphs for AutoShrink's proxy training, off by default.

The k candidates of one step train as one fused model (:mod:`~searching.fused.executor`), and a
training step can be replayed as a CUDA graph (:mod:`~searching.fused.cuda_graph`). Every result
equals separate training up to float rounding. GPU speed is unmeasured, so both stay off.
"""
