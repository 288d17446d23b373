"""The RNN language-model code shared by the searches and the trainers.

* :mod:`api.rnn.model`: the AutoShrink DAG cell (:class:`~api.rnn.model.DagCell`) in its
  language model (:class:`~api.rnn.model.RNNModel`: embedding -> cell -> tied decoder);
* :mod:`api.rnn.tied_lm`: that language model's embedding, dropouts and tied decoder
  (:class:`~api.rnn.tied_lm.TiedEmbeddingLM`), shared with the DARTS/ENAS cell's LM;
* :mod:`api.rnn.recurrence`: the DAG cell's recurrence, one autograd Function with a
  hand-written backward;
* :mod:`api.rnn.softmax_loss`: the fused tied-decoder cross-entropy;
* :mod:`api.rnn.dropout`: DARTS's dropouts (variational masks, locked and word dropout);
* :mod:`api.rnn.data`: PTB-format corpora, batchified streams and their windows;
* :mod:`api.rnn.embedding`: ``w2v.pkl`` word vectors (restricted unpickler) and the
  embedding initialisation.

The DARTS/ENAS highway cell's LM (:mod:`api.spaces.darts_rnn.model`) is the same
:class:`~api.rnn.tied_lm.TiedEmbeddingLM` with its own cell, so ``evaluation/rnn/train.py``
trains either model.
"""
