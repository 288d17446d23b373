"""AutoShrink searches: the shared shrink loop plus the CNN and RNN search spaces."""
