"""NAO's numbering of the ENAS micro space (Luo et al., NeurIPS 2018): the ``nao`` space.

The same 40-integer form as ``enas-micro`` with NAO's op ids 0..15 (ENAS's 5 ops, then
NAONet-A's 11-op NASNet-style space: :data:`~api.spaces.enas_micro.arch.NAO_OPS`), built in
NAO's own network (:mod:`api.spaces.nao.network`). Its presets (NAONet-A/B/WS) are in
:mod:`api.spaces.nao.presets`.
"""
from __future__ import annotations

from typing import Any, Optional

from api.errors import UserError
from api.spaces.base import dataset_info
from api.spaces.enas_micro import ENAS_OPS, NAO_OPS, MicroArch, _digits, _max_op, _MicroSpace

#: (C, N) defaults of NAO's networks: CIFAR N=6 (20 cells), C=36 (NAO_V1 ``train_cifar.py``);
#: ImageNet N=4 (14 cells), C=48 (``train_imagenet.py``).
NAO_DEFAULT_SIZE = {"cifar10": (36, 6), "cifar100": (36, 6), "imagenet16": (36, 6),
                    "imagenet": (48, 4)}


class NAOSpace(_MicroSpace):
    name = "nao"
    ops = NAO_OPS
    what = "NAO micro architecture"

    def looks_like(self, text: str) -> bool:
        values = _digits(text)
        return values is not None and len(ENAS_OPS) <= _max_op(values) < len(NAO_OPS)

    def build_network(self, arch: MicroArch, dataset: str = "cifar10", C: Optional[int] = None,
                      N: Optional[int] = None, auxiliary: bool = False,
                      drop_path_prob: float = 0.0, keep_prob: float = 1.0, **kwargs: Any):
        """NAO's ``NASNetworkCIFAR`` (cifar10, cifar100; imagenet16 at 16x16) or
        ``NASNetworkImageNet`` (imagenet): ``3N + 2`` cells of width ``C``."""
        from api.spaces.nao.network import NAONetwork

        if kwargs:
            raise UserError(f"the nao space's networks take C, N, auxiliary, drop_path_prob and "
                            f"keep_prob, not {', '.join(sorted(kwargs))}")
        shape, classes = dataset_info(dataset)
        C0, N0 = NAO_DEFAULT_SIZE[dataset]
        C = C0 if C is None else int(C)
        N = N0 if N is None else int(N)
        if C < 2 or C % 2 or N < 1:
            raise UserError(f"the nao network needs an even C >= 2 and N >= 1 (got C={C}, N={N})")
        return NAONetwork(self.validate(arch), classes, C=C, N=N, auxiliary=bool(auxiliary),
                          keep_prob=float(keep_prob), imagenet=dataset == "imagenet",
                          input_hw=shape[1], drop_path_prob=float(drop_path_prob))

