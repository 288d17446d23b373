"""Progress for a person at a terminal and for a log file: a tqdm bar, or plain lines.

Logs redirected to a file must not fill with a bar's escape codes, so where stderr is not a
terminal :func:`progress` returns :class:`PlainProgress`: one line ``desc: n/total unit (p%),
elapsed, time left`` at most every ``PLAIN_EVERY`` seconds and one when it finishes. Both take tqdm's
arguments and offer the methods the runs use. ``AUTOSHRINK_PROGRESS=bar|plain`` overrides.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Optional

PLAIN_EVERY = 60.0  # seconds between two plain progress lines


def on_terminal() -> bool:
    """Whether progress goes to a terminal (bars) or to a file or pipe (plain lines)."""
    forced = os.environ.get("AUTOSHRINK_PROGRESS", "").lower()
    if forced in ("bar", "plain"):
        return forced == "bar"
    return sys.stderr.isatty()


def progress(iterable: Optional[Iterable] = None, **kwargs: Any):
    """A tqdm bar on a terminal, else :class:`PlainProgress`, with tqdm's arguments."""
    if on_terminal():
        from tqdm import tqdm

        kwargs.setdefault("dynamic_ncols", True)
        return tqdm(iterable, **kwargs)
    return PlainProgress(iterable, **kwargs)


def duration(seconds: float) -> str:
    """``1 h 05 min``, ``3 min 20 s``, ``42 s``: how long, for people."""
    seconds = max(float(seconds), 0.0)
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.0f} s"


class PlainProgress:
    """tqdm's interface, printed as occasional plain lines on stderr."""

    def __init__(self, iterable: Optional[Iterable] = None, total: Optional[float] = None,
                 initial: float = 0, desc: str = "", unit: str = "it", disable: bool = False,
                 leave: bool = True, every: Optional[float] = None, **unused: Any) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.n, self.initial = total, initial, initial
        self.desc, self.unit, self.disable, self.leave = desc, unit, disable, leave
        self.every = PLAIN_EVERY if every is None else every
        self.start = self.last = time.monotonic()
        self.postfix = ""

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._line(now)

    def line(self, now: Optional[float] = None) -> str:
        """The progress line as printed."""
        now = time.monotonic() if now is None else now
        elapsed, done = now - self.start, self.n - self.initial
        of = f"/{self.total:g}" if self.total else ""
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        eta = ""
        if self.total and 0 < done and self.n < self.total:
            eta = f", about {duration(elapsed / done * (self.total - self.n))} left"
        post = f" [{self.postfix}]" if self.postfix else ""
        head = f"{self.desc}: " if self.desc else ""
        return f"{head}{self.n:g}{of} {self.unit}{share}, {duration(elapsed)} elapsed{eta}{post}"

    def _line(self, now: Optional[float] = None) -> None:
        if not self.disable:
            print(self.line(now), file=sys.stderr, flush=True)

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def write(self, s: str, file: Any = None) -> None:
        print(s, file=file or sys.stdout, flush=True)

    def close(self) -> None:
        """A last line for a finished bar that is kept (``leave``); none after an error."""
        if self.leave and self.n > self.initial and self.total and self.n >= self.total:
            self._line()
        self.disable = True


def say(text: str, file: Any = None) -> None:
    """Print a line without breaking a bar on the terminal (tqdm.write), or plainly."""
    if on_terminal():
        from tqdm import tqdm

        tqdm.write(text, file=file)
    else:
        print(text, file=file or sys.stdout, flush=True)
