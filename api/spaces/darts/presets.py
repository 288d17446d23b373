"""Published cells of the DARTS CNN space in the zoo, with their papers' CIFAR-10 figures.

Genotypes are copied from the official code: quark0/darts ``cnn/genotypes.py`` (NASNet,
AmoebaNet, DARTS_V1, DARTS_V2), AutoDL-Projects' ``genotypes.py`` (PNASNet, GDAS_V1) and
melodyguan/enas ``cifar10_micro_final.sh`` (the ENAS micro cell, converted: :data:`ENAS_ARC`).
Papers' figures are their CIFAR-10 tables (with cutout); our counts come from :func:`zoo_table`
(params without the auxiliary head, DARTS's convention; MACs by
:func:`api.spaces.complexity.count_macs`).

See docs/zoo.md.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from api.spaces import zoo
from api.spaces.arch_io import Arch
from api.spaces.darts.genotype import Genotype, validate

# --------------------------------------------------------------------------- genotypes
# quark0/darts cnn/genotypes.py, `NASNet`
NASNET_A = Genotype(
    normal=[("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 1), ("skip_connect", 1)],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
            ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
            ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
    reduce_concat=[4, 5, 6])

# quark0/darts cnn/genotypes.py, `AmoebaNet`
AMOEBANET_A = Genotype(
    normal=[("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
            ("skip_connect", 0), ("avg_pool_3x3", 1)],
    normal_concat=[4, 5, 6],
    reduce=[("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
            ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
            ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
    reduce_concat=[3, 4, 6])

# D-X-Y/AutoDL-Projects xautodl/nas_infer_model/DXYs/genotypes.py, `PNASNet` (not in DARTS's
# code). PNASNet-5 uses the same cell for reduction (stride 2 on the cell inputs).
_PNAS_CELL = [("sep_conv_5x5", 0), ("max_pool_3x3", 0), ("sep_conv_7x7", 1), ("max_pool_3x3", 1),
              ("sep_conv_5x5", 1), ("sep_conv_3x3", 1), ("sep_conv_3x3", 4), ("max_pool_3x3", 1),
              ("sep_conv_3x3", 0), ("skip_connect", 1)]
PNASNET = Genotype(normal=list(_PNAS_CELL), normal_concat=[2, 3, 4, 5, 6],
                   reduce=list(_PNAS_CELL), reduce_concat=[2, 3, 4, 5, 6])

# quark0/darts cnn/genotypes.py, `DARTS_V1` (first-order search)
DARTS_V1 = Genotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=[2, 3, 4, 5])

# quark0/darts cnn/genotypes.py, `DARTS_V2` (second-order search; DARTS = DARTS_V2 there)
DARTS_V2 = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5])

# D-X-Y/AutoDL-Projects xautodl/nas_infer_model/DXYs/genotypes.py, `GDAS_V1` (CVPR 2019).
# (A third-party copy seen while checking ends the reduction cell with ('sep_conv_5x5', 2);
# both D-X-Y sources have ('sep_conv_5x5', 1), kept here.)
GDAS_V1 = Genotype(
    normal=[("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 3), ("skip_connect", 0), ("sep_conv_5x5", 4), ("sep_conv_3x3", 3)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("sep_conv_5x5", 2), ("sep_conv_5x5", 1),
            ("dil_conv_5x5", 2), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_5x5", 1)],
    reduce_concat=[2, 3, 4, 5])

#: The ENAS micro cell of the official code: ``--child_fixed_arc`` in melodyguan/enas
#: ``scripts/cifar10_micro_final.sh``; 5 nodes x [x_input, x_op, y_input, y_op], normal cell
#: then reduction cell; ops 0 sep_conv_3x3, 1 sep_conv_5x5, 2 avg_pool_3x3, 3 max_pool_3x3,
#: 4 identity; inputs 0/1 = c_{k-2}/c_{k-1}.
ENAS_ARC = [0, 2, 0, 0, 0, 4, 0, 1, 0, 4, 1, 1, 1, 0, 0, 1, 0, 2, 1, 1,
            1, 0, 1, 0, 0, 3, 0, 2, 1, 1, 3, 1, 1, 0, 0, 4, 0, 3, 1, 1]
_ENAS_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip_connect")


def _enas_cell(arc: Sequence[int]) -> Tuple[List[Tuple[str, int]], List[int]]:
    """One ENAS micro cell -> DARTS (pairs, concat). ENAS's identity is DARTS's skip_connect
    (both a FactorizedReduce when a reduction cell reads a cell input) and ENAS concatenates
    the nodes no other node reads."""
    pairs = [(_ENAS_OPS[arc[k + 1]], arc[k]) for k in range(0, len(arc), 2)]
    read = {idx for _, idx in pairs}
    steps = len(pairs) // 2
    return pairs, [n for n in range(2, steps + 2) if n not in read]


def enas_arc_to_genotype(arc: Sequence[int]) -> Genotype:
    """The ENAS/NAO micro integer list (normal then reduction cell) as a DARTS genotype.

    Exact for ENAS arcs that read both cell inputs (ENAS would also concatenate an unread
    cell input; the DARTS cell cannot)."""
    half = len(arc) // 2
    normal, normal_concat = _enas_cell(arc[:half])
    reduce, reduce_concat = _enas_cell(arc[half:])
    return validate(Genotype(normal, normal_concat, reduce, reduce_concat))


ENAS = enas_arc_to_genotype(ENAS_ARC)

#: Not registered: the ENAS cell as AutoDL-Projects' older GDAS code transcribed it from the
#: ENAS paper's figure (``ENASNet`` in ``others/GDAS/lib/nas/genotypes.py``, removed from that
#: repository in Dec 2019). It differs from the cell the official ENAS script trains, and
#: other third-party transcriptions of the figure disagree with it in the reduction cell.
ENAS_PAPER_FIGURE_GDAS = Genotype(
    normal=[("sep_conv_3x3", 1), ("skip_connect", 1), ("sep_conv_5x5", 1), ("skip_connect", 0),
            ("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("avg_pool_3x3", 1),
            ("sep_conv_5x5", 1), ("avg_pool_3x3", 0)],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("avg_pool_3x3", 1),
            ("sep_conv_3x3", 1), ("avg_pool_3x3", 1), ("avg_pool_3x3", 1), ("sep_conv_5x5", 4),
            ("sep_conv_3x3", 5), ("sep_conv_5x5", 0)],
    reduce_concat=[2, 3, 4, 5, 6])

# --------------------------------------------------------------------------- zoo entries
#: preset -> (genotype, paper figures). Test errors are the CIFAR-10 errors (%) the papers
#: report with cutout; params_M as printed. DARTS's Table 1 quotes NASNet-A, AmoebaNet-A, PNAS
#: and ENAS from their own papers with these same figures.
_DARTS_T1 = "DARTS (Liu et al., ICLR 2019), Table 1"
PAPERS = {
    "nasnet-a": (NASNET_A, dict(
        params_M=3.3, test_error=2.65,
        source=f"NASNet-A + cutout: Zoph et al. (CVPR 2018), as quoted in {_DARTS_T1}")),
    "amoebanet-a": (AMOEBANET_A, dict(
        params_M=3.2, test_error=3.34,
        source=f"AmoebaNet-A + cutout (3.34 +- 0.06): Real et al. (AAAI 2019), as quoted in "
               f"{_DARTS_T1}")),
    "pnasnet": (PNASNET, dict(
        params_M=3.2, test_error=3.41,
        source=f"PNAS (3.41 +- 0.09): Liu et al. (ECCV 2018), as quoted in {_DARTS_T1}")),
    "enas": (ENAS, dict(
        params_M=4.6, test_error=2.89,
        source=f"ENAS + cutout (micro): Pham et al. (ICML 2018), Table 2, as quoted in "
               f"{_DARTS_T1}")),
    "darts-v1": (DARTS_V1, dict(
        params_M=3.3, test_error=3.00,
        source=f"DARTS (first order) + cutout (3.00 +- 0.14): {_DARTS_T1}")),
    "darts-v2": (DARTS_V2, dict(
        params_M=3.3, test_error=2.76,
        source=f"DARTS (second order) + cutout (2.76 +- 0.09): {_DARTS_T1}",
        imagenet_params_M=4.7, imagenet_macs_M=574, imagenet_top1_error=26.7,
        imagenet_source="DARTS (ICLR 2019), Table 2 (mobile setting)")),
    "gdas-v1": (GDAS_V1, dict(
        params_M=3.4, test_error=2.93,
        source="GDAS (Dong & Yang, CVPR 2019), CIFAR-10 table (with cutout)")),
}


def _factory(genotype: Genotype):
    return lambda: Arch("darts", genotype)


for _name, (_genotype, _paper) in PAPERS.items():
    zoo.register(_name, _factory(_genotype), dataset="cifar10", **_paper)


# --------------------------------------------------------------------------- our counts
def preset_counts(name: str, dataset: str = "cifar10", **size) -> Tuple[int, int]:
    """(params, MACs) of a preset's DARTS network (``C``/``layers`` default per dataset)."""
    from api.spaces import get_space

    return get_space("darts").count(PAPERS[name][0], dataset, **size)


def zoo_table(dataset: str = "cifar10", **size) -> str:
    """Markdown table: our params/MACs (DARTS network, default size) next to each paper's."""
    rows = ["| preset | our params (M) | our MACs (M) | paper params (M) | paper error (%) |",
            "|---|---|---|---|---|"]
    for name, (_, paper) in PAPERS.items():
        params, macs = preset_counts(name, dataset, **size)
        rows.append(f"| {name} | {params / 1e6:.6f} | {macs / 1e6:.6f} | "
                    f"{paper['params_M']} | {paper['test_error']:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m api.spaces.darts.presets
    print(zoo_table())
