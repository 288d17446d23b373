"""The ENAS micro CNN space (Pham et al., 2018; NAO-WS searches the same space).
NAO's 16-op numbering of it (``nao``, for NAONet-A) is :mod:`api.spaces.nao`.

``enas-micro`` architectures are :class:`MicroArch` (40 integers:
:mod:`api.spaces.enas_micro.arch`; JSON ``{"normal": [...], "reduce": [...]}``). Each converts
losslessly to a DARTS ``Genotype`` (:meth:`EnasMicroSpace.to_genotype`, concat = the loose-end
nodes) and back (:meth:`EnasMicroSpace.from_genotype`); the fixed network is the ``darts``
space's ``NetworkCIFAR`` / ``NetworkImageNet``, which leaves out a cell input no node reads
where ENAS and NAO concatenate it (:func:`loose_inputs` tells which).

Fidelity notes: docs/fidelity/enas.md.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from api.errors import UserError
from api.spaces.base import SearchSpace, dataset_info
from api.spaces.enas_micro.arch import (ARCH_LEN, ENAS_OPS, NAO_OPS, NODES,
                                        MicroArch, from_genotype, from_json, loose_ends,
                                        loose_inputs, make_arch, parse_arch, to_genotype,
                                        to_json)

__all__ = ["MicroArch", "ENAS_OPS", "NAO_OPS", "EnasMicroSpace", "loose_ends",
           "loose_inputs", "to_genotype", "from_genotype", "make_arch"]


def _digits(text: str):
    tokens = text.split()
    if len(tokens) != ARCH_LEN or not all(t.isdigit() for t in tokens):
        return None
    return [int(t) for t in tokens]


def _max_op(values) -> int:
    return max(values[4 * n + k] for n in range(2 * NODES) for k in (1, 3))


class _MicroSpace(SearchSpace):
    kind = "cnn"
    what = "ENAS micro architecture"

    def parse(self, text: str) -> MicroArch:
        return parse_arch(text, len(self.ops), self.what)

    def format(self, arch: MicroArch) -> str:
        return self.validate(arch).to_string()

    def to_json(self, arch: MicroArch) -> Dict[str, Any]:
        return to_json(self._check(arch))

    def from_json(self, data: Dict[str, Any]) -> MicroArch:
        return from_json(data, len(self.ops), self.what)

    def validate(self, arch: Any) -> MicroArch:
        return make_arch(self._check(arch).to_list(), len(self.ops), self.what)

    def _check(self, arch: Any) -> MicroArch:
        if isinstance(arch, (list, tuple)):
            return make_arch(arch, len(self.ops), self.what)
        if not isinstance(arch, MicroArch):
            raise UserError(f"not an {self.what}: {type(arch).__name__}")
        return arch

    def to_genotype(self, arch: MicroArch):
        """The DARTS ``Genotype`` (DARTS op names; concat = the loose-end nodes)."""
        return to_genotype(self.validate(arch))

    def from_genotype(self, genotype: Any) -> MicroArch:
        """A DARTS genotype that is an ENAS micro architecture -> :class:`MicroArch`."""
        return from_genotype(genotype)


class EnasMicroSpace(_MicroSpace):
    name = "enas-micro"
    ops = ENAS_OPS

    def looks_like(self, text: str) -> bool:
        values = _digits(text)
        return values is not None and _max_op(values) < len(ENAS_OPS)

    def build_network(self, arch: MicroArch, dataset: str = "cifar10", **kwargs: Any):
        """The ``darts`` space's network for :meth:`to_genotype` (``NetworkCIFAR``, C=36, 20
        cells, or ``NetworkImageNet``, C=48, 14 cells; keyword arguments as that space's:
        ``C``, ``layers``, ``auxiliary``, ``drop_path_prob``)."""
        from api.spaces import get_space

        return get_space("darts").build_network(self.to_genotype(arch), dataset, **kwargs)

    def supernet(self, dataset: str = "cifar10", num_classes: Optional[int] = None,
                 **kwargs: Any):
        """ENAS's micro weight-sharing child network
        (:class:`api.spaces.enas_micro.supernet.EnasMicroSupernet`; keyword arguments as
        its constructor: ``C``, ``layers``, ``auxiliary``, ``keep_prob``, ...)."""
        from api.spaces.enas_micro.supernet import EnasMicroSupernet

        shape, classes = dataset_info(dataset)
        return EnasMicroSupernet(num_classes=int(num_classes or classes),
                                 input_size=shape[1], in_channels=shape[0], **kwargs)
