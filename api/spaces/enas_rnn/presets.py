"""ENAS's PTB cell in the zoo (``enas-ptb``).

Cell: the ``fixed_arc`` of the authors' final PTB script (melodyguan/enas
``scripts/ptb_final.sh``), ``0 0 0 1 1 2 1 2 0 2 0 5 1 1 0 6 1 8 1 8 1 8 1`` (12 nodes, 6 loose
ends); DARTS's ``rnn/genotypes.py`` ``ENAS`` genotype is the same cell numbered differently.
Paper: ENAS (Pham, Guan, Zoph, Le, Dean; arXiv:1802.03268), Table 1: 24M parameters, 55.8 test
perplexity; the ICML 2018 proceedings version's abstract reports 56.3. ENAS's repository now
marks its PTB language-model code as wrong (README errata, pointing to google-research
``enas_lm``, which reports another cell). Our network at ENAS's final size (emsize = nhid = 748,
tied, no decoder bias): 22,027,104 parameters; at DARTS's 850 with a bias, 27,295,000.
"""
from api.spaces import zoo
from api.spaces.arch_io import Arch
from api.spaces.enas_rnn import ENAS_PTB

zoo.register("enas-ptb", lambda: Arch("enas-rnn", ENAS_PTB),
             dataset="ptb", params_M=24, test_ppl=55.8,
             source="ENAS (arXiv:1802.03268) Table 1; cell = fixed_arc of melodyguan/enas "
                    "scripts/ptb_final.sh",
             note="the ICML 2018 version's abstract reports 56.3 test perplexity")
