"""The ENAS macro architecture: per layer one op and its skip connections to earlier layers.

Text form: ENAS's macro ``fixed_arc`` (melodyguan/enas ``scripts/cifar10_macro_final.sh``):
for each layer ``k`` (0-based) its op id, then ``k`` skip bits, all separated by spaces, so an
``L``-layer network has ``L (L + 1) / 2`` integers. Skip bit ``i`` of layer ``k`` connects the
``i``-th earlier output other than the layer's own input: output ``i`` of ``[stem, layer 0,
..., layer k-2]`` (ENAS's ``prev_layers[i]``; layer ``k`` reads layer ``k-1`` anyway).

Op ids (ENAS's ``general_child.py`` branch order): 0 conv 3x3, 1 sep conv 3x3, 2 conv 5x5,
3 sep conv 5x5, 4 avg pool 3x3, 5 max pool 3x3.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from api.errors import UserError

MACRO_OPS: Tuple[str, ...] = ("conv_3x3", "sep_conv_3x3", "conv_5x5", "sep_conv_5x5",
                              "avg_pool_3x3", "max_pool_3x3")
WHAT = "ENAS macro architecture"
#: which branches a search-network layer computes while training: ``all`` six (every branch's
#: BN running statistics follow the shared weights; only the sampled one feeds forward and gets
#: a gradient), ``sampled`` (only the sampled one), ``last`` (the last branch, max pool,
#: whatever was sampled: what TF ``general_child.py`` computes, its ``lambda: y`` closures
#: binding late)
MACRO_BRANCHES: Tuple[str, ...] = ("all", "sampled", "last")


@dataclass(frozen=True)
class MacroArch:
    """``ops[k]``: layer k's op id; ``skips[k]``: its k skip bits (0/1)."""

    ops: Tuple[int, ...]
    skips: Tuple[Tuple[int, ...], ...]

    @property
    def num_layers(self) -> int:
        return len(self.ops)

    def to_list(self) -> List[int]:
        out: List[int] = []
        for op, bits in zip(self.ops, self.skips):
            out += [op, *bits]
        return out

    def to_string(self) -> str:
        return " ".join(map(str, self.to_list()))

    def __str__(self) -> str:
        return self.to_string()

    def skip_count(self) -> int:
        return sum(sum(b) for b in self.skips)


def layers_for(count: int) -> Optional[int]:
    """``L`` with ``L (L + 1) / 2 == count``, or None."""
    L = int((math.isqrt(8 * count + 1) - 1) // 2)
    return L if L >= 1 and L * (L + 1) // 2 == count else None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def make_macro(values: Sequence[Any], num_ops: int = len(MACRO_OPS)) -> MacroArch:
    """The flat integer list -> :class:`MacroArch`, or one :class:`UserError`."""
    values = list(values)
    L = layers_for(len(values))
    if L is None:
        raise UserError(f"an {WHAT} of L layers has L(L+1)/2 integers (each layer's op, then "
                        f"one skip bit per earlier layer); {len(values)} is no such count")
    ops, skips, pos = [], [], 0
    for k in range(L):
        op, bits = values[pos], values[pos + 1:pos + 1 + k]
        if not _is_int(op) or not 0 <= op < num_ops:
            raise UserError(f"{WHAT}: layer {k} (item {pos}) has op {op!r}; ops are "
                            f"0..{num_ops - 1} ({', '.join(MACRO_OPS[:num_ops])})")
        for j, b in enumerate(bits):
            if not _is_int(b) or b not in (0, 1):
                raise UserError(f"{WHAT}: layer {k} skip {j} (item {pos + 1 + j}) is {b!r}, "
                                "not 0 or 1")
        ops.append(op)
        skips.append(tuple(bits))
        pos += 1 + k
    return MacroArch(tuple(ops), tuple(skips))


def parse_macro(text: str) -> MacroArch:
    if not isinstance(text, str):
        raise UserError(f"an {WHAT} string is text, got {type(text).__name__}")
    values: List[int] = []
    for k, tok in enumerate(text.replace(",", " ").split()):
        try:
            values.append(int(tok))
        except ValueError:
            raise UserError(f"{WHAT}: item {k} is {tok[:20]!r}, not an integer") from None
    return make_macro(values)


def looks_like(text: str) -> bool:
    tokens = text.split()
    if not tokens or not all(t.isdigit() for t in tokens):
        return False
    L = layers_for(len(tokens))
    if L is None or L < 2:
        return False
    try:
        make_macro([int(t) for t in tokens])
    except UserError:
        return False
    return True


def to_json(arch: MacroArch) -> Dict[str, Any]:
    return {"layers": [[op, *bits] for op, bits in zip(arch.ops, arch.skips)]}


def from_json(data: Any) -> MacroArch:
    if isinstance(data, dict) and isinstance(data.get("layers"), list):
        flat: List[Any] = []
        for k, row in enumerate(data["layers"]):
            if not isinstance(row, list) or len(row) != k + 1:
                raise UserError(f"{WHAT} in JSON: layer {k} must be [op, {k} skip bits]")
            flat += row
        return make_macro(flat)
    if isinstance(data, str):
        return parse_macro(data)
    if isinstance(data, list):
        return make_macro(data)
    raise UserError(f"{WHAT} in JSON is {{\"layers\": [[op], [op, skip0], [op, skip0, "
                    "skip1], ...]}")
