"""Random search at AutoShrink's budget: the baseline strategy and its CLI."""
