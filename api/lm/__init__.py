"""Language-model parts every RNN space and trainer shares: PTB-format corpora, word vectors,
DARTS's dropouts, the tied-embedding LM and its fused decoder loss."""
