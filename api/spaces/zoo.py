"""The zoo: published cells of every space, by preset name, with what their papers report.

Every trainer and ``evaluation/model_info.py`` accept these names for ``--arch``. Each space's
package adds its presets to :data:`PRESETS` and their papers' figures to :data:`PAPER`
(genotypes come from each paper's official code; the module that adds them says where).
"""
from __future__ import annotations

from typing import Any, Callable, Dict

from api.errors import UserError
from api.spaces.arch_io import Arch

#: preset name -> a function returning its architecture.
PRESETS: Dict[str, Callable[[], Arch]] = {}
#: preset name -> what its paper reports (e.g. {"dataset": "cifar10", "params_M": 3.3,
#: "test_error": 2.76, "source": "DARTS (ICLR 2019), Table 1"}).
PAPER: Dict[str, Dict[str, Any]] = {}


def register(name: str, factory: Callable[[], Arch], **paper: Any) -> None:
    PRESETS[name] = factory
    if paper:
        PAPER[name] = paper


def get(name: str) -> Arch:
    _load_all()
    try:
        return PRESETS[name.lower()]()
    except KeyError:
        raise UserError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None


def names():
    _load_all()
    return sorted(PRESETS)


_LOADED = False
#: Modules that register presets when imported (kept lazy: they import torch models).
PRESET_MODULES = ["api.spaces.autoshrink_cnn.presets",
                  "api.spaces.autoshrink_rnn.presets", "api.spaces.darts_rnn.presets",
                  "api.spaces.enas_rnn.presets", "api.spaces.darts.presets",
                  "api.spaces.nao.presets"]


def _load_all() -> None:
    global _LOADED
    if not _LOADED:
        import importlib

        for module in PRESET_MODULES:
            importlib.import_module(module)
        _LOADED = True


#: The spaces whose architectures are AutoShrink cell graphs (what a graph file may name).
GRAPH_SPACES = ("autoshrink-cnn", "autoshrink-rnn")
GRAPH_PRESET_MODULES = ["api.spaces.autoshrink_cnn.presets", "api.spaces.autoshrink_rnn.presets"]


def graph_presets() -> Dict[str, Callable[[], Any]]:
    """The presets that are AutoShrink cell graphs: name -> a function returning the graph."""
    import importlib

    for module in GRAPH_PRESET_MODULES:
        importlib.import_module(module)
    return {name: (lambda f=factory: f().value) for name, factory in sorted(PRESETS.items())
            if factory().space in GRAPH_SPACES}


def get_graph(name: str):
    """The AutoShrink cell graph of preset ``name`` (ShrinkCNN-A/B, ShrinkRNN)."""
    presets = graph_presets()
    try:
        return presets[name.lower()]()
    except KeyError:
        raise UserError(f"unknown preset {name!r}; known: {', '.join(presets)}") from None
