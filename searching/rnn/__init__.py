"""AutoShrink RNN cell search: the PTB proxy evaluator, the proxy and word-vector makers, and the
search CLI (``train.py``)."""
