"""AutoShrink's RNN space: node ops, the DAG cell's recurrence and language model, its parameter
count, and the ShrinkRNN preset. The graph itself is :mod:`api.spaces.dag`."""
