"""The architecture pool of NAO-WS and the controller's token form of an architecture.

Token form (NAO's ``parse_arch_to_seq``, two tokens per branch): the 40 integers of a
:class:`~api.spaces.enas_micro.MicroArch` with every input index ``i`` written as ``i + 1``
(1..6) and every op ``o`` as ``o + 7`` (7..11); token 0 is the decoder's start symbol (12 tokens).
A node's two branches commute, so swapping them names the same cell (:func:`swap_branches`:
NAO's symmetry augmentation; :func:`canonical`). Pool files are NAO's (:func:`write_pool`),
so pools move both ways between this code and NAO's.

See docs/nao.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Sequence, Tuple

import torch

from api.runs.atomic_io import atomic_write_text
from api.spaces.enas_micro import MicroArch
from api.errors import UserError
from api.spaces.enas_micro.arch import (ARCH_LEN, CELL_LEN, ENAS_OPS, NODES, make_arch,
                                        parse_arch)

VOCAB = 12
SOS = 0
INDEX_OFFSET = 1
OP_OFFSET = 7
NUM_OPS = len(ENAS_OPS)


def arch_to_seq(arch: MicroArch) -> List[int]:
    """The 40 controller tokens of ``arch``."""
    values = arch.to_list()
    return [v + (INDEX_OFFSET if k % 2 == 0 else OP_OFFSET) for k, v in enumerate(values)]


def seq_to_arch(seq: Sequence[int]) -> MicroArch:
    """40 tokens -> the architecture (one UserError if they do not name a valid one)."""
    return make_arch([int(t) - (INDEX_OFFSET if k % 2 == 0 else OP_OFFSET)
                      for k, t in enumerate(seq)])


def allowed_tokens(position: int) -> Tuple[int, int]:
    """``[lo, hi)`` of the tokens valid at ``position`` (0..39): inputs 0..n+1 of node n, or
    one of the 5 ops. The decoder picks only among these, so what it writes is valid."""
    pos = position % CELL_LEN
    if pos % 2 == 0:
        node = pos // 4
        return INDEX_OFFSET, INDEX_OFFSET + node + 2
    return OP_OFFSET, OP_OFFSET + NUM_OPS


def random_arch(generator: torch.Generator) -> MicroArch:
    """One architecture drawn uniformly (each input among the node's predecessors, each op
    among the 5), as NAO's ``generate_arch``."""
    values: List[int] = []
    for _cell in range(2):
        for node in range(NODES):
            for _branch in range(2):
                values.append(int(torch.randint(node + 2, (1,), generator=generator)))
                values.append(int(torch.randint(NUM_OPS, (1,), generator=generator)))
    return make_arch(values)


def canonical(arch: MicroArch) -> MicroArch:
    """``arch`` with each node's two branches in ascending ``(idx, op)`` order: one name for
    the cells that differ only by swapped branches (the same network)."""
    values = arch.to_list()
    for k in range(0, ARCH_LEN, 4):
        a, b = values[k:k + 2], values[k + 2:k + 4]
        if b < a:
            values[k:k + 4] = b + a
    return make_arch(values)


def random_archs(n: int, generator: torch.Generator, exclude: Iterable[MicroArch] = ()
                 ) -> List[MicroArch]:
    """``n`` random architectures, distinct and not in ``exclude`` up to branch order
    (:func:`canonical`; NAO draws with repeats, but a pool of distinct cells wastes no
    evaluations)."""
    seen = {canonical(a) for a in exclude}
    out: List[MicroArch] = []
    while len(out) < n:
        arch = random_arch(generator)
        if canonical(arch) not in seen:
            seen.add(canonical(arch))
            out.append(arch)
    return out


def swap_branches(seq: Sequence[int], normal_node: int, reduce_node: int) -> List[int]:
    """``seq`` with the two branches of node ``normal_node`` of the normal cell and of node
    ``reduce_node`` of the reduction cell swapped (the same architecture)."""
    out = list(seq)
    for base, node in ((0, normal_node), (CELL_LEN, reduce_node)):
        k = base + 4 * node
        out[k:k + 4] = out[k + 2:k + 4] + out[k:k + 2]
    return out


def pairwise_accuracy(a: Sequence[float], b: Sequence[float]) -> float:
    """Share of pairs ordered alike by ``a`` and ``b`` (NAO's ranking metric; ties in ``a``
    count as ``>=``, as NAO's)."""
    x, y = torch.as_tensor(list(a), dtype=torch.float64), torch.as_tensor(list(b),
                                                                         dtype=torch.float64)
    n = len(x)
    if n < 2:
        return float("nan")
    i, j = torch.triu_indices(n, n, 1)
    ge = (x[i] >= x[j]) & (y[i] >= y[j])
    lt = (x[i] < x[j]) & (y[i] < y[j])
    return float((ge | lt).double().mean())


@dataclass
class PoolEntry:
    arch: MicroArch
    measured: float
    predicted: float = math.nan

    def line(self) -> str:
        return f"{self.arch.to_string()}\t{self.measured}\t{self.predicted}"


def sort_entries(entries: Sequence[PoolEntry]) -> List[PoolEntry]:
    """Best measured first; ties keep pool order (a stable sort, so runs are reproducible)."""
    return sorted(entries, key=lambda e: -e.measured)


def _arch_lines(archs: Iterable[MicroArch]) -> str:
    return "".join(a.to_string() + "\n" for a in archs)


def write_pool(root: Path, entries: Sequence[PoolEntry], epoch: int, top: int = 5) -> None:
    """An evaluated pool, best first, atomically: NAO's ``arch_pool`` (one architecture a
    line, its 40 integers) and ``arch_pool.perf`` (its error rate, ``1 - accuracy``), the same
    pair as ``arch_pool.<epoch>`` / ``arch_pool.perf.<epoch>``; ``arch_pool.final`` (the
    ``top`` best, the same form); ``arch_pool.scores`` (``<40 integers>\t<measured
    accuracy>\t<predicted accuracy>``)."""
    root = Path(root)
    ranked = sort_entries(entries)
    archs = _arch_lines(e.arch for e in ranked)
    perf = "".join(f"{1.0 - e.measured}\n" for e in ranked)
    for name, text in ((f"arch_pool.{epoch}", archs), (f"arch_pool.perf.{epoch}", perf),
                       ("arch_pool.perf", perf), ("arch_pool", archs),
                       ("arch_pool.final", _arch_lines(e.arch for e in ranked[:top])),
                       ("arch_pool.scores", "".join(e.line() + "\n" for e in ranked))):
        atomic_write_text(root / name, text)


def write_next_pool(root: Path, pool: Sequence[MicroArch]) -> None:
    """``arch_pool`` overwritten by the pool the next part trains (NAO's order: the kept
    best, the generated, the random), as NAO does after each update."""
    atomic_write_text(Path(root) / "arch_pool", _arch_lines(pool))


def read_arch_pool(path: Path) -> List[MicroArch]:
    """The architectures of an ``arch_pool`` file (NAO's or ours): 40 integers a line, blank
    lines skipped; anything else is one UserError naming the line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read the architecture pool {path}: {e.strerror or e}") from None
    archs = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                archs.append(parse_arch(line, what="arch_pool architecture"))
            except UserError as e:
                raise UserError(f"{path}, line {n}: {e}") from None
    if not archs:
        raise UserError(f"the architecture pool {path} holds no architecture")
    return archs


def read_perf(path: Path) -> List[float]:
    """The numbers of an ``arch_pool.perf`` file, one a line."""
    return [float(v) for v in Path(path).read_text().split()]


def read_pool(path: Path) -> List[PoolEntry]:
    """The entries of an ``arch_pool.scores`` file (tests, users)."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            ints, measured, predicted = line.split("\t")
            out.append(PoolEntry(make_arch([int(t) for t in ints.split()]), float(measured),
                                 float(predicted)))
    return out


assert ARCH_LEN == 2 * CELL_LEN
