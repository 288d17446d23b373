"""The DARTS CNN space behind the common interface: ``get_space("darts")``.

Architectures are :class:`~api.spaces.darts.genotype.Genotype`; the text form is DARTS's own
repr, the JSON form ``{"normal": [[op, idx], ...], "normal_concat": [...], "reduce": ...,
"reduce_concat": ...}``. Fixed networks: DARTS's ``NetworkCIFAR`` (CIFAR-10/100, and
ImageNet-16-120 at 16x16) and ``NetworkImageNet`` (ImageNet, mobile setting).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from api.errors import UserError
from api.spaces.base import SearchSpace, dataset_info
from api.spaces.darts import genotype as G

#: (C, layers) defaults per dataset, DARTS's evaluation settings.
DEFAULT_SIZE = {"cifar10": (36, 20), "cifar100": (36, 20), "imagenet16": (36, 20),
                "imagenet": (48, 14)}


class DartsSpace(SearchSpace):
    name = "darts"
    kind = "cnn"
    ops = G.PRIMITIVES

    # ------------------------------------------------------------------ formats
    def parse(self, text: str) -> G.Genotype:
        return G.parse_genotype(text)

    def format(self, arch: Any) -> str:
        return G.format_genotype(arch)

    def to_json(self, arch: Any) -> Dict[str, Any]:
        return G.to_json(arch)

    def from_json(self, data: Dict[str, Any]) -> G.Genotype:
        return G.from_json(data)

    def validate(self, arch: Any) -> G.Genotype:
        return G.validate(arch)

    def looks_like(self, text: str) -> bool:
        head = text.lstrip()
        return head.startswith("Genotype(") and ("normal" in head or "reduce" in head)

    # ------------------------------------------------------------------ networks
    def build_network(self, arch: Any, dataset: str = "cifar10", C: Optional[int] = None,
                      layers: Optional[int] = None, auxiliary: bool = False,
                      drop_path_prob: float = 0.0, **kwargs: Any):
        """``NetworkCIFAR`` for cifar10/cifar100/imagenet16 (defaults C=36, 20 cells),
        ``NetworkImageNet`` for imagenet (C=48, 14 cells); see :mod:`.network` for the
        forward contract (logits, or ``(logits, logits_aux)`` when training with
        ``auxiliary=True``)."""
        from api.spaces.darts.network import NetworkCIFAR, NetworkImageNet

        if kwargs:
            raise UserError(f"the darts space's networks take C, layers, auxiliary and "
                            f"drop_path_prob, not {', '.join(sorted(kwargs))}")
        _, classes = dataset_info(dataset)
        genotype = G.validate(arch.value if hasattr(arch, "space") else arch)
        C0, L0 = DEFAULT_SIZE[dataset]
        C = C0 if C is None else int(C)
        layers = L0 if layers is None else int(layers)
        if C < 2 or C % 2 or layers < 1:
            raise UserError(f"darts network needs an even C >= 2 and layers >= 1 "
                            f"(got C={C}, layers={layers})")
        cls = NetworkImageNet if dataset == "imagenet" else NetworkCIFAR
        return cls(C, classes, layers, bool(auxiliary), genotype,
                   drop_path_prob=float(drop_path_prob))

    def supernet(self, dataset: str = "cifar10", C: int = 16, layers: int = 8, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, frc: bool = False,
                 lastact: bool = False, num_classes: Optional[int] = None,
                 pool_bn: bool = True, track_running_stats: bool = True, **kwargs: Any):
        """DARTS's search network (:class:`~api.spaces.darts.supernet.DartsSupernet`; DARTS's
        defaults: C=16, 8 cells, 4 nodes); ``frc`` = GDAS-FRC, ``lastact`` = GDAS's BN-ReLU
        head (GDAS's NASNet-space search: ``layers=6``), ``pool_bn=False`` = GDAS's pooling
        ops (no BN after them), ``track_running_stats=False``: the cells' BN keep no running
        statistics. ``num_classes`` overrides the dataset's (e.g. a user's ImageFolder); the
        stem is DARTS's CIFAR one (3 channels)."""
        from api.spaces.darts.supernet import DartsSupernet

        if kwargs:
            raise UserError(f"the darts supernet takes C, layers, steps, multiplier, "
                            f"stem_multiplier, frc, lastact, pool_bn, track_running_stats "
                            f"and num_classes, not {', '.join(sorted(kwargs))}")
        classes = int(num_classes) if num_classes is not None else dataset_info(dataset)[1]
        try:
            return DartsSupernet(int(C), classes, int(layers), int(steps), int(multiplier),
                                 int(stem_multiplier), frc=bool(frc), lastact=bool(lastact),
                                 pool_bn=bool(pool_bn),
                                 track_running_stats=bool(track_running_stats))
        except ValueError as exc:
            raise UserError(str(exc)) from None
