"""Final RNN training and test of any RNN cell on Penn Treebank."""
