"""DARTS's PTB cell in the zoo (``darts-ptb``).

Genotype: ``DARTS_V2`` of quark0/darts ``rnn/genotypes.py`` (the second-order search's cell,
``DARTS = DARTS_V2`` there). Paper: DARTS (Liu, Simonyan, Yang; ICLR 2019), Table 2, "DARTS
(second order)": 23M parameters, 55.7 test perplexity on PTB, trained by ``rnn/train.py`` at
emsize = nhid = 850. Our network at those sizes: 22,960,000 parameters (10000 x 850 tied
embedding 8.5M + W0 1700 x 1700 2.89M + 8 x 850 x 1700 11.56M + decoder bias 10k).
"""
from api.spaces import zoo
from api.spaces.arch_io import Arch
from api.spaces.darts_rnn.genotype import DARTS_V2

zoo.register("darts-ptb", lambda: Arch("darts-rnn", DARTS_V2),
             dataset="ptb", params_M=23, test_ppl=55.7,
             source="DARTS (ICLR 2019) Table 2, second order; genotype DARTS_V2 from "
                    "quark0/darts rnn/genotypes.py")
