"""Reading DARTS's ``Genotype(...)`` namedtuples: the parts the CNN genotype
(:mod:`api.spaces.darts.genotype`) and the RNN genotype (:mod:`api.spaces.darts_rnn.genotype`)
share.

Each genotype module makes one :class:`GenotypeText` with its field names and wording, which
reads text without ``eval`` (:meth:`GenotypeText.parse_fields`: :func:`ast.parse`, each field a
literal by position or name, :meth:`GenotypeText.literal`), dicts and namedtuple-like objects
(:meth:`GenotypeText.json_fields`, :meth:`GenotypeText.object_fields`), and checks concat
indices (:meth:`GenotypeText.check_indices`). Malformed input raises one :class:`UserError`
line ``"<what>: <problem>"``.
"""
from __future__ import annotations

import ast
from typing import Any, Dict, List, NoReturn, Sequence

from api.errors import UserError


def is_int(v: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


class GenotypeText:
    """The text, JSON and object readers of one ``Genotype`` namedtuple type.

    ``what`` starts every error (``"DARTS genotype"``); ``fields`` are the namedtuple's fields
    in order; ``call_form`` is the expected spelling an error shows
    (``"Genotype(recurrent=[...], concat=...)"``); ``too_many`` the error for too many
    positional values (``{n}``: how many); ``fields_hint`` what an unknown field's error adds in
    brackets. ``none_fields``: keywords read and dropped when they are ``None`` (AutoDL's
    ``connectN``/``connects``), refused otherwise. ``none``: ``None`` is a literal.
    ``floats``: a sign may stand before a float (or bool) and ``+`` is read too, and errors
    speak of "numbers" (the CNN genotype, for GDAS's weighted pairs); else only ``-`` before
    an int, and "integers". ``ranges_as_lists``: ``range(...)`` reads as a list, else as a
    ``range``.
    """

    def __init__(self, what: str, fields: Sequence[str], call_form: str, too_many: str,
                 fields_hint: str, none_fields: Sequence[str] = (), none: bool = False,
                 floats: bool = False, ranges_as_lists: bool = False) -> None:
        self.what = what
        self.fields = tuple(fields)
        self.call_form = call_form
        self.too_many = too_many
        self.fields_hint = fields_hint
        self.none_fields = tuple(none_fields)
        self.none = none
        self.floats = floats
        self.ranges_as_lists = ranges_as_lists

    def fail(self, msg: str) -> NoReturn:
        raise UserError(f"{self.what}: {msg}")

    # ------------------------------------------------------------------ text
    def _constant(self, value: Any) -> bool:
        return (value is None and self.none) or isinstance(value, (str, int, float))

    def _signed(self, node: ast.AST) -> bool:
        if self.floats:
            return isinstance(node.op, (ast.USub, ast.UAdd)) \
                and isinstance(node.operand, ast.Constant) \
                and isinstance(node.operand.value, (int, float))
        return isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and is_int(node.operand.value)

    def literal(self, node: ast.AST, where: str) -> Any:
        """The value of a literal expression (no names, no calls but ``range`` and
        ``list``/``tuple`` of a literal sequence); ``where`` names it in the error."""
        if isinstance(node, ast.Constant) and self._constant(node.value):
            return node.value
        if isinstance(node, ast.UnaryOp) and self._signed(node):
            value = node.operand.value
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.literal(e, where) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id == "range" and 1 <= len(node.args) <= 3:
                args = [self.literal(a, where) for a in node.args]
                if all(is_int(a) for a in args) and (len(args) < 3 or args[2] != 0):
                    return list(range(*args)) if self.ranges_as_lists else range(*args)
            if node.func.id in ("list", "tuple") and len(node.args) == 1:
                inner = self.literal(node.args[0], where)
                if isinstance(inner, (list, tuple, range)):
                    return list(inner)
        try:
            shown = ast.unparse(node)
        except Exception:  # pragma: no cover - unparse handles every parsed node
            shown = type(node).__name__
        if len(shown) > 40:
            shown = shown[:37] + "..."
        numbers = "numbers" if self.floats else "integers"
        self.fail(f"{where} holds {shown!r}, which is not a literal (only lists, tuples, "
                  f"strings, {numbers} and range(a, b) are read)")

    def parse_fields(self, text: str) -> Dict[str, Any]:
        """``Genotype(...)`` text -> {field: literal value}, every field given once."""
        if not isinstance(text, str):
            self.fail(f"expected a string, got {type(text).__name__}")
        src = text.strip()
        if not src:
            self.fail("empty string")
        try:
            tree = ast.parse(src, mode="eval")
        except SyntaxError as exc:
            self.fail(f"not a Genotype(...) expression ({exc.msg} at column {exc.offset}): "
                      f"{src[:60]!r}")
        call = tree.body
        name = None
        if isinstance(call, ast.Call):
            if isinstance(call.func, ast.Name):
                name = call.func.id
            elif isinstance(call.func, ast.Attribute):  # e.g. genotypes.Genotype(...)
                name = call.func.attr
        if name != "Genotype":
            self.fail(f"expected {self.call_form}, got {src[:60]!r}")
        if len(call.args) > len(self.fields):
            self.fail(self.too_many.format(n=len(call.args)))
        values: Dict[str, Any] = {}
        for field, arg in zip(self.fields, call.args):
            if isinstance(arg, ast.Starred):
                self.fail("starred arguments are not read")
            values[field] = self.literal(arg, field)
        for kw in call.keywords:
            if kw.arg is None:
                self.fail("**arguments are not read")
            if kw.arg in self.none_fields:
                extra = self.literal(kw.value, kw.arg)
                if extra is not None:
                    self.fail(f"{kw.arg}={extra!r} is not supported (only AutoDL's None)")
                continue
            if kw.arg not in self.fields:
                self.fail(f"unknown field {kw.arg!r} ({self.fields_hint})")
            if kw.arg in values:
                self.fail(f"field {kw.arg!r} given twice")
            values[kw.arg] = self.literal(kw.value, kw.arg)
        missing = [f for f in self.fields if f not in values]
        if missing:
            self.fail(f"missing field(s) {', '.join(missing)}")
        return values

    # ------------------------------------------------------------------ JSON and objects
    def json_fields(self, data: Any) -> List[Any]:
        """The fields of a JSON object, in order; missing or unknown keys are errors."""
        if not isinstance(data, dict):
            self.fail(f"expected a JSON object with {', '.join(self.fields)}, "
                      f"got {type(data).__name__}")
        missing = [f for f in self.fields if f not in data]
        if missing:
            self.fail(f"JSON object lacks {', '.join(missing)}")
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            self.fail(f"JSON object has unknown key(s) {', '.join(unknown)}")
        return [data[f] for f in self.fields]

    def object_fields(self, genotype: Any) -> List[Any]:
        """The fields of a genotype-like object (any namedtuple with them), in order."""
        try:
            return [getattr(genotype, f) for f in self.fields]
        except AttributeError:
            self.fail(f"expected a Genotype with fields {', '.join(self.fields)}, "
                      f"got {type(genotype).__name__}")

    # ------------------------------------------------------------------ field checks
    def check_indices(self, field: str, indices: Any, noun: str, lo: int, hi: int,
                      range_name: str) -> List[int]:
        """A non-empty list (or range) of distinct ints in ``lo..hi``, as a list; ``noun``
        (``node``, ``state``) and ``range_name`` (``an intermediate node``) word the errors."""
        if isinstance(indices, range):
            indices = list(indices)
        if not isinstance(indices, (list, tuple)) or not indices:
            self.fail(f"{field} must be a non-empty list of {noun} indices, got {indices!r}")
        out: List[int] = []
        for c in indices:
            if not is_int(c) or not lo <= c <= hi:
                self.fail(f"{field} index {c!r} is not {range_name} ({lo}..{hi})")
            if c in out:
                self.fail(f"{field} lists {noun} {c} twice")
            out.append(int(c))
        return out


__all__ = ["GenotypeText", "is_int"]
