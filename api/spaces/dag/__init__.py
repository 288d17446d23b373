"""The cell DAG that AutoShrink shrinks, shared by its CNN and RNN spaces: the graph, its
files (pickle, JSON, text, drawing) and the space interface over it."""
