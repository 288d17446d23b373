"""The search-space library: every space by name, loaded on first use.

>>> from api.spaces import get_space
>>> space = get_space("nas-bench-201")            # doctest: +SKIP
>>> arch = space.parse("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|")
"""
from __future__ import annotations

import importlib
from typing import Dict, List

from api.errors import UserError
from api.spaces.base import SearchSpace

#: name -> "module:Class". Modules are imported only when their space is asked for, so
#: importing this package stays cheap. Each space's package registers its own line here.
SPACE_CLASSES: Dict[str, str] = {
    "autoshrink-cnn": "api.spaces.autoshrink_cnn.space:AutoShrinkCNNSpace",
    "autoshrink-rnn": "api.spaces.autoshrink_rnn.space:AutoShrinkRNNSpace",
    "darts": "api.spaces.darts.space:DartsSpace",
    "darts-rnn": "api.spaces.darts_rnn:DartsRNNSpace",
    "enas-macro": "api.spaces.enas_macro:EnasMacroSpace",
    "enas-micro": "api.spaces.enas_micro:EnasMicroSpace",
    "enas-rnn": "api.spaces.enas_rnn:EnasRNNSpace",
    "nas-bench-201": "api.spaces.nasbench201:NASBench201Space",
    "nao": "api.spaces.nao:NAOSpace",
}

_INSTANCES: Dict[str, SearchSpace] = {}


def space_names() -> List[str]:
    return sorted(SPACE_CLASSES)


def get_space(name: str) -> SearchSpace:
    """The space called ``name`` (one instance per process), or one clear error."""
    if name not in _INSTANCES:
        try:
            target = SPACE_CLASSES[name]
        except KeyError:
            raise UserError(f"unknown search space {name!r}; known: "
                            f"{', '.join(space_names())}") from None
        module, cls = target.split(":")
        _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[name]
