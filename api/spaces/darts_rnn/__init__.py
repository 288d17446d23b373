"""The DARTS RNN cell space (5 ops: none + 4 activations) and its language model.

Architecture: DARTS's ``Genotype(recurrent=[(activation, predecessor), ...], concat=...)``
(:mod:`api.spaces.darts_rnn.genotype`); text form = DARTS's repr, JSON
``{"recurrent": [[act, pred], ...], "concat": [...]}``. Network: DARTS's PTB language model
(:class:`api.spaces.darts_rnn.model.CellLM`), by default at DARTS's final-training sizes and
dropouts (``rnn/train.py``: emsize = nhid = 850, dropout 0.75, dropouth 0.25, dropoutx 0.75,
dropouti 0.2, dropoute 0.1).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from api.errors import UserError
from api.spaces.base import SearchSpace
from api.spaces.darts_rnn.genotype import (PRIMITIVES, Genotype, format_genotype, from_json,
                                           parse_genotype, to_json, validate)

#: Vocabulary sizes of the word-level corpora these LMs are reported on (Mikolov's PTB;
#: WikiText-2 as DARTS's ``data.py`` builds it).
DATASET_VOCAB = {"ptb": 10000, "wikitext2": 33278}
#: DARTS ``rnn/train.py`` defaults (the final PTB training).
DARTS_TRAIN = {"emsize": 850, "dropout": 0.75, "dropouth": 0.25, "dropoutx": 0.75,
               "dropouti": 0.2, "dropoute": 0.1}


def vocab_size(dataset: str, ntokens: Optional[int]) -> int:
    if ntokens is not None:
        if int(ntokens) < 1:
            raise UserError(f"ntokens must be at least 1, got {ntokens}")
        return int(ntokens)
    try:
        return DATASET_VOCAB[dataset]
    except KeyError:
        raise UserError(f"unknown text dataset {dataset!r} (known: "
                        f"{', '.join(DATASET_VOCAB)}; or give ntokens)") from None


def build_cell_lm(space: SearchSpace, arch: Any, dataset: str, ntokens: Optional[int],
                  emsize: int, nhid: Optional[int], unused: Dict[str, Any], **settings: Any):
    """The :class:`CellLM` of ``arch`` in an RNN cell space (its ``cell_args``) for
    ``dataset``'s vocabulary: what both RNN cell spaces' ``build_network`` builds with their
    own defaults. ``unused``: the keyword arguments the space does not take (an error);
    ``settings``: the dropouts, ``decoder_bias`` and ``embedding``."""
    if unused:
        raise UserError(f"the {space.name} network takes no {', '.join(sorted(unused))}")
    from api.spaces.darts_rnn.model import CellLM

    nodes, concat, first = space.cell_args(arch)
    return CellLM(nodes, concat, vocab_size(dataset, ntokens), emsize, nhid, first_act=first,
                  **settings)


class DartsRNNSpace(SearchSpace):
    name = "darts-rnn"
    kind = "rnn"
    ops = PRIMITIVES

    # ------------------------------------------------------------------ formats
    def parse(self, text: str) -> Genotype:
        return parse_genotype(text)

    def format(self, arch: Genotype) -> str:
        return format_genotype(arch)

    def to_json(self, arch: Genotype) -> Dict[str, Any]:
        return to_json(arch)

    def from_json(self, data: Dict[str, Any]) -> Genotype:
        return from_json(data)

    def validate(self, arch: Any) -> Genotype:
        return validate(arch)

    def looks_like(self, text: str) -> bool:
        """``Genotype(recurrent=...`` (or positional ``Genotype([...], ...)`` without the
        CNN genotype's ``normal``/``reduce`` fields)."""
        head = "".join(text.split())
        if not head.startswith(("Genotype(", "genotypes.Genotype(")):
            return False
        return "recurrent=" in head or ("normal" not in head and "reduce" not in head)

    # ------------------------------------------------------------------ network and cost
    def cell_args(self, arch: Any) -> Tuple[list, list, str]:
        """(nodes, output states, first activation) of :class:`CellLM` for ``arch``."""
        g = validate(arch)
        return list(g.recurrent), list(g.concat), "tanh"

    def build_network(self, arch: Any, dataset: str = "ptb", ntokens: Optional[int] = None,
                      emsize: int = DARTS_TRAIN["emsize"], nhid: Optional[int] = None,
                      dropout: float = DARTS_TRAIN["dropout"],
                      dropouth: float = DARTS_TRAIN["dropouth"],
                      dropoutx: float = DARTS_TRAIN["dropoutx"],
                      dropouti: float = DARTS_TRAIN["dropouti"],
                      dropoute: float = DARTS_TRAIN["dropoute"],
                      decoder_bias: bool = True, embedding=None, **unused: Any):
        """DARTS's PTB language model of ``arch`` (a :class:`CellLM`)."""
        return build_cell_lm(self, arch, dataset, ntokens, emsize, nhid, unused,
                             dropout=dropout, dropouth=dropouth, dropoutx=dropoutx,
                             dropouti=dropouti, dropoute=dropoute, decoder_bias=decoder_bias,
                             embedding=embedding)

    def supernet(self, ntokens: int, emsize: int = 300, nhid: Optional[int] = None,
                 dropout: float = 0.75, dropouth: float = 0.25, dropoutx: float = 0.75,
                 dropouti: float = 0.2, dropoute: float = 0.0, steps: int = 8):
        """DARTS's RNN search model (:class:`api.spaces.darts_rnn.supernet.DartsRNNSupernet`),
        by default at ``rnn/train_search.py``'s sizes and dropouts."""
        from api.spaces.darts_rnn.supernet import DartsRNNSupernet

        return DartsRNNSupernet(ntokens, emsize, nhid, dropout, dropouth, dropoutx, dropouti,
                                dropoute, steps)

    def count(self, arch: Any, dataset: str = "ptb", ntokens: Optional[int] = None,
              emsize: int = DARTS_TRAIN["emsize"], nhid: Optional[int] = None,
              decoder_bias: bool = True, **unused: Any) -> Tuple[int, int]:
        """(params, MACs of one word): the tied embedding counted once; MACs are the cell's
        and the decoder's matmuls for one step of batch 1 (computed, no network built)."""
        from api.spaces.darts_rnn.model import lm_macs_per_token, lm_params

        nodes, _concat, _first = self.cell_args(arch)
        V, H = vocab_size(dataset, ntokens), emsize if nhid is None else nhid
        if H != emsize:
            raise UserError(f"the decoder is tied to the embedding: nhid ({H}) must equal "
                            f"emsize ({emsize})")
        return (lm_params(len(nodes), V, emsize, H, decoder_bias),
                lm_macs_per_token(len(nodes), V, emsize, H))
