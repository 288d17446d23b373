"""The ENAS macro CNN space (Pham et al., 2018, §2.3; the seed's own ENAS code): an L-layer
network, each layer one of 6 ops and any skip connections to earlier layers.

``enas-macro``: architectures are :class:`MacroArch`; text form = ENAS's macro ``fixed_arc``
integers (per layer: op id, then one skip bit per earlier output; :mod:`.arch`); JSON
``{"layers": [[op], [op, s0], ...]}``. The fixed network for retraining
(:class:`~api.spaces.enas_macro.network.EnasMacroNetwork`, default C=96 as the official
``cifar10_macro_final.sh``; ``--C`` overrides) and the search's weight-sharing network
(:meth:`EnasMacroSpace.supernet`, C=36 and 12 layers as ``cifar10_macro_search.sh``). Cost:
the base class's count (params without an auxiliary head; conv/linear MACs).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from api.errors import UserError
from api.spaces.base import SearchSpace, dataset_info
from api.spaces.enas_macro.arch import (MACRO_OPS, MacroArch, from_json, looks_like,
                                        make_macro, parse_macro, to_json)

__all__ = ["MacroArch", "MACRO_OPS", "EnasMacroSpace", "make_macro"]

#: The official final network's width (cifar10_macro_final.sh ``--child_out_filters=96``).
DEFAULT_C = 96


class EnasMacroSpace(SearchSpace):
    name = "enas-macro"
    kind = "cnn"
    ops = MACRO_OPS

    def parse(self, text: str) -> MacroArch:
        return parse_macro(text)

    def format(self, arch: MacroArch) -> str:
        return self.validate(arch).to_string()

    def to_json(self, arch: MacroArch) -> Dict[str, Any]:
        return to_json(self._check(arch))

    def from_json(self, data: Dict[str, Any]) -> MacroArch:
        return from_json(data)

    def validate(self, arch: Any) -> MacroArch:
        return make_macro(self._check(arch).to_list())

    def looks_like(self, text: str) -> bool:
        return looks_like(text)

    def _check(self, arch: Any) -> MacroArch:
        if isinstance(arch, (list, tuple)):
            return make_macro(arch)
        if not isinstance(arch, MacroArch):
            raise UserError(f"not an ENAS macro architecture: {type(arch).__name__}")
        return arch

    def build_network(self, arch: MacroArch, dataset: str = "cifar10", C: Optional[int] = None,
                      layers: Optional[int] = None, auxiliary: bool = False,
                      drop_path_prob: float = 0.0, keep_prob: float = 0.5, **kwargs: Any):
        """:class:`EnasMacroNetwork` (``layers`` must equal the architecture's; ENAS's macro
        networks have no auxiliary head or drop-path, so those are accepted and unused)."""
        from api.spaces.enas_macro.network import EnasMacroNetwork

        if kwargs:
            raise UserError(f"the enas-macro network takes C, layers and keep_prob, not "
                            f"{', '.join(sorted(kwargs))}")
        arch = self.validate(arch)
        if layers is not None and int(layers) != arch.num_layers:
            raise UserError(f"this ENAS macro architecture has {arch.num_layers} layers; "
                            f"--layers {layers} cannot change that (drop --layers)")
        shape, classes = dataset_info(dataset)
        C = DEFAULT_C if C is None else int(C)
        if C < 2:
            raise UserError(f"the enas-macro network needs C >= 2 (got {C})")
        return EnasMacroNetwork(arch, classes, C=C, keep_prob=float(keep_prob),
                                in_channels=shape[0])

    def supernet(self, dataset: str = "cifar10", num_classes: Optional[int] = None,
                 **kwargs: Any):
        """ENAS's macro search network (keyword arguments: ``C``, ``layers``,
        ``keep_prob``, ``branches``)."""
        from api.spaces.enas_macro.network import EnasMacroSupernet

        shape, classes = dataset_info(dataset)
        return EnasMacroSupernet(num_classes=int(num_classes or classes), in_channels=shape[0],
                                 **kwargs)
