"""Architecture files of every space: pickle (restricted unpickler), JSON and text.

``save_arch(arch, path)`` writes ``path`` (a pickle), ``path.json`` (``{"space", "arch",
"text"}``) and ``path.txt`` (the space's one-line form), each atomically. ``load_arch(spec)``
takes any of those files, a zoo preset name, or a space string, so every trainer accepts
whatever any search wrote. Pickles load through an unpickler that admits only the rebuild
functions of :class:`Arch` and of AutoShrink's ``CellGraph``: a crafted file cannot run code.
"""
from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from api.runs.atomic_io import atomic_pickle, atomic_write_text
from api.runs.file_checks import RefusedGlobal, is_file, other_kind, pickle_problem
from api.errors import UserError
from api.spaces import get_space, space_names


@dataclass(frozen=True)
class Arch:
    """An architecture of a named space. Pickles as (space, JSON form), never as code."""

    space: str
    value: Any

    @property
    def text(self) -> str:
        return get_space(self.space).format(self.value)

    def to_json(self) -> Dict[str, Any]:
        return {"space": self.space, "arch": get_space(self.space).to_json(self.value),
                "text": self.text}

    def __str__(self) -> str:
        return self.text

    def __reduce__(self):
        return _rebuild_arch, (self.space, get_space(self.space).to_json(self.value))


def _rebuild_arch(space: str, data: Dict[str, Any]) -> Arch:
    return Arch(space, get_space(space).from_json(data))


_ALLOWED = {("api.spaces.arch_io", "_rebuild_arch"), ("api.spaces.dag.graph", "_rebuild_graph"),
            ("api.graph", "_rebuild_graph")}  # older pickles name the old module


class _ArchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise RefusedGlobal(f"refusing to load global {module}.{name}")


def save_arch(arch: Arch, path: str) -> None:
    """Write ``path`` (pickle), ``path.json`` and ``path.txt``."""
    atomic_pickle(path, arch)
    atomic_write_text(f"{path}.json", json.dumps(arch.to_json(), indent=1) + "\n")
    atomic_write_text(f"{path}.txt", arch.text + "\n")


def from_json(data: Any, source: str = "architecture") -> Arch:
    if isinstance(data, dict) and data.get("format") == "autoshrink-cell-graph":
        from api.spaces.dag.graph import CellGraph  # a graph-best's .json twin

        graph = CellGraph.from_dict(data, source=source)
        return Arch(f"autoshrink-{graph.space}", graph)
    if not isinstance(data, dict) or "space" not in data or "arch" not in data:
        raise UserError(f"{source} is not an architecture file (expected a JSON object with "
                        "'space' and 'arch')")
    return Arch(data["space"], get_space(data["space"]).from_json(data["arch"]))


def loads_arch(data: bytes, source: str = "architecture") -> Arch:
    """Decode file bytes: JSON, a pickle (restricted), or a space's one-line text."""
    kind = other_kind(data)
    if kind is not None:
        raise UserError(f"{source} is {kind}, not an architecture file (a search's arch-best or "
                        "graph-best, its .json or .txt twin)")
    head = data.lstrip()[:1]
    if head == b"{":
        try:
            return from_json(json.loads(data.decode("utf-8")), source)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{source} is not valid JSON ({exc})") from exc
    if head == b"\x80":  # pickle protocol 2+
        try:
            obj = _ArchUnpickler(io.BytesIO(data)).load()
        except UserError:
            raise
        except RefusedGlobal as exc:
            raise UserError(f"{source} holds other Python objects than an architecture "
                            f"({exc}); if you trust its origin, use its .json twin") from exc
        except Exception as exc:  # truncated or damaged bytes raise many types
            raise UserError(f"{source} {pickle_problem(data, exc)}") from exc
        return _as_arch(obj, source)
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UserError(f"{source} is a binary file that is neither JSON nor a pickle (it starts "
                        f"with {data[:8]!r}): not an architecture file") from None
    if not any(get_space(name).looks_like(text) for name in space_names()):
        raise UserError(f"{source} is a text file that holds no architecture string (it starts "
                        f"with {text[:40]!r})")
    return parse_arch(text, source=source)


def _as_arch(obj: Any, source: str) -> Arch:
    if isinstance(obj, Arch):
        return obj
    from api.spaces.dag.graph import CellGraph

    if isinstance(obj, CellGraph):  # AutoShrink's graph-best and friends
        return Arch(f"autoshrink-{obj.space}", obj)
    raise UserError(f"{source} does not hold an architecture")


def parse_arch(text: str, space: Optional[str] = None, source: str = "architecture") -> Arch:
    """A space's one-line string; the space is ``space`` or the one whose form it has."""
    if space is not None:
        return Arch(space, get_space(space).parse(text))
    for name in space_names():
        candidate = get_space(name)
        if candidate.looks_like(text):
            return Arch(name, candidate.parse(text))
    from api.spaces import zoo

    raise UserError(f"{source}: {text[:80]!r} is no file, zoo preset ({', '.join(zoo.names())})"
                    f" or architecture string of any space ({', '.join(space_names())})")


def load_arch(spec: str, space: Optional[str] = None) -> Arch:
    """A file any search wrote, a zoo preset name, or a space string (``--arch``)."""
    from api.spaces import zoo

    if spec.lower() in zoo.names():
        return zoo.get(spec)
    text = spec.strip()
    if any(get_space(name).looks_like(text) for name in space_names()):
        return parse_arch(text, space, source="--arch")  # a space string: no file system query
    path = Path(spec)
    if is_file(spec):
        return loads_arch(path.read_bytes(), source=str(path))
    if path.suffix in (".json", ".pkl", ".txt") or "/" in spec and not spec.startswith("|"):
        raise UserError(f"architecture file {spec} not found (give a file a search wrote, a "
                        f"space string, or a preset: {', '.join(zoo.names())})")
    return parse_arch(spec, space, source="--arch")
