"""What a search space is: its architecture type and formats, ops, fixed network and cost.

The NASLib split: a space knows nothing of search; methods (``searching/``) and evaluators
(proxy training, tabular look-up) know a space only through this interface.

Each space has its own architecture type (a DARTS ``Genotype``, a NAS-Bench-201 cell, an
AutoShrink ``CellGraph``, ...). Every architecture has three lossless forms, all tested by
round trip: the space's one-line text form (``format``/``parse``), a JSON-able dict
(``to_json``/``from_json``), and a pickle written by :mod:`api.spaces.arch_io` that loads
through a restricted unpickler.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, Tuple

from api.errors import UserError

#: Input shape (C, H, W) of one image per dataset, for cost counting.
DATASET_INPUT = {"cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "imagenet16": (3, 16, 16),
                 "imagenet": (3, 224, 224)}
DATASET_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet16": 120, "imagenet": 1000}


def dataset_info(dataset: str) -> Tuple[Tuple[int, int, int], int]:
    """(input shape, classes) of a dataset name, or one clear error."""
    try:
        return DATASET_INPUT[dataset], DATASET_CLASSES[dataset]
    except KeyError:
        raise UserError(f"unknown dataset {dataset!r} (choose "
                        f"{', '.join(DATASET_INPUT)})") from None


class SearchSpace(ABC):
    """One search space. Subclasses set ``name``, ``kind`` and ``ops`` and implement the
    formats; those with a fixed network implement ``build_network``."""

    #: Registry name, as ``--space`` takes it (e.g. ``darts``, ``nas-bench-201``).
    name: str = ""
    #: ``cnn`` or ``rnn``: which trainers can train its networks.
    kind: str = "cnn"
    #: The candidate operations, in the space's canonical order (indices in integer formats).
    ops: Tuple[str, ...] = ()

    # ------------------------------------------------------------------ formats
    @abstractmethod
    def parse(self, text: str) -> Any:
        """The space's one-line text form -> architecture; a malformed string raises one
        :class:`UserError` naming what is wrong."""

    @abstractmethod
    def format(self, arch: Any) -> str:
        """Architecture -> the space's one-line text form (``parse(format(a)) == a``)."""

    @abstractmethod
    def to_json(self, arch: Any) -> Dict[str, Any]:
        """Architecture -> a JSON-able dict (``from_json(to_json(a)) == a``)."""

    @abstractmethod
    def from_json(self, data: Dict[str, Any]) -> Any:
        """The dict ``to_json`` wrote -> architecture; bad content raises :class:`UserError`."""

    def validate(self, arch: Any) -> Any:
        """Check an architecture built in code (ops in the space, indices in range); return it."""
        return self.from_json(self.to_json(arch))

    def looks_like(self, text: str) -> bool:
        """Whether ``text`` is plausibly this space's string form (for auto-detection)."""
        return False

    # ------------------------------------------------------------------ networks and cost
    def build_network(self, arch: Any, dataset: str = "cifar10", **kwargs: Any):
        """The fixed network that retrains ``arch`` on ``dataset``; keyword arguments are the
        space's width/depth settings (e.g. ``C``, ``layers``, ``auxiliary``)."""
        raise UserError(f"the {self.name} space has no fixed network to train")

    def supernet(self, dataset: str = "cifar10", **kwargs: Any):
        """The weight-sharing supernet of the space, for the methods that need one."""
        raise UserError(f"the {self.name} space has no supernet")

    def count(self, arch: Any, dataset: str = "cifar10", **kwargs: Any) -> Tuple[int, int]:
        """(params, MACs) of one image through ``build_network(arch, dataset, **kwargs)``.

        Params are every parameter, BatchNorm included, except an auxiliary head (DARTS's
        ``count_parameters_in_MB`` and NAS-Bench-201's convention); MACs count conv and linear
        multiply-accumulates of the inference path (:func:`api.spaces.complexity.count_macs`)."""
        from api.spaces.complexity import count_macs

        shape, _ = dataset_info(dataset)
        model = self.build_network(arch, dataset, **kwargs)
        return params_without_auxiliary(model), count_macs(model, shape)


def params_without_auxiliary(model) -> int:
    """Every parameter except those of a module named ``auxiliary*`` (DARTS's convention)."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)
