"""A run folder, for every search and training: the flags all of them share, ``args.json``,
the seed, and one ``--resume`` rule.

The rule: ``--resume`` continues with the flags the run recorded in ``args.json``. A flag given
again with another value is refused, naming it, unless ``--force`` (then the new value is used);
runtime flags (device, progress, plots, executors, data paths) may always change. A run then
checks what its flags do not show (data fingerprints, the evaluator's settings) with
:func:`refuse_changed_settings`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from api.errors import UserError
from api.runs.atomic_io import atomic_write_json

#: ``--seed``'s default for every run; ``-1`` draws a random seed and prints it.
SEED_DEFAULT = 0
ARGS_FILE = "args.json"
#: The common flags that never change a run's results: a resumed run may give new values.
RUN_FLAGS = frozenset({"resume", "force", "device", "quiet"})


def add_run_flags(group, folder: str, device: bool = True, seed_aliases: Sequence[str] = (),
                  quiet_help: str = "no progress bars",
                  seed_help: str = "seeds every random choice of the run; -1: a random seed, "
                                   "printed") -> None:
    """``--device --resume --force --seed --quiet``, the flags every run folder shares
    (``folder``: the name of the CLI's output-folder flag, for the help texts)."""
    if device:
        group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    group.add_argument("--resume", action="store_true",
                       help=f"continue the run in --{folder} with its recorded flags")
    group.add_argument("--force", action="store_true",
                       help="with --resume: accept flags that differ from the run's")
    group.add_argument("--seed", *seed_aliases, dest="seed", type=int, default=SEED_DEFAULT,
                       help=seed_help)
    group.add_argument("--quiet", action="store_true", help=quiet_help)


def read_args(root) -> Optional[Dict[str, Any]]:
    """The flags the run in ``root`` recorded, or None where it has none (or a damaged file)."""
    try:
        with open(os.path.join(str(root), ARGS_FILE), encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def write_args(root, args: Any) -> None:
    """Record the run's flags (a namespace or a dict) in ``root/args.json``, atomically."""
    atomic_write_json(os.path.join(str(root), ARGS_FILE),
                      vars(args) if isinstance(args, argparse.Namespace) else dict(args))


def resolve_seed(args: argparse.Namespace, root) -> argparse.Namespace:
    """``--seed -1``: the resumed run's own seed, else a random one, printed."""
    if args.seed < 0 and getattr(args, "resume", False):
        args.seed = int((read_args(root) or {}).get("seed", -1))
    if args.seed < 0:
        args.seed = random.randint(1, 100000)
        print(f"seed: {args.seed}")
    return args


def given_flags(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> Set[str]:
    """Destinations of the flags actually on the command line (argparse keeps pre-set
    namespace attributes instead of defaults, so a sentinel tells them apart)."""
    unset = object()
    ns = parser.parse_args(argv, argparse.Namespace(**{a.dest: unset for a in parser._actions}))
    return {k for k, v in vars(ns).items() if v is not unset}


def resume_args(args: argparse.Namespace, saved: Dict[str, Any], given: Set[str],
                runtime: Iterable[str], root, folder: str
                ) -> Tuple[argparse.Namespace, List[str]]:
    """The resumed run's flags: the saved ones, plus the runtime flags (:data:`RUN_FLAGS`
    and ``runtime``) given now. A flag given with another value is refused, naming it, unless
    ``--force``; then it is used and listed in the second return value. A flag the saved run
    did not know yet takes its value now."""
    free = RUN_FLAGS | set(runtime)
    merged, changed = dict(saved), []
    for key, value in vars(args).items():
        if key not in saved or key in (folder, "resume", "force") or (
                key in given and key in free):
            merged[key] = value
        elif key in given and saved[key] != value:
            changed.append(f"--{key} {_flag_value(value)} (the run's: {_flag_value(saved[key])})")
            merged[key] = value
    if changed and not getattr(args, "force", False):
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise UserError(f"{changed[0]}{more} differs from the run in {root}: drop it, "
                        f"pass --force to continue with it, or start a new --{folder}")
    return argparse.Namespace(**merged), changed


def _flag_value(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def refuse_changed_settings(saved: Dict[str, Any], now: Dict[str, Any], root,
                            skip=(), dashes: bool = False,
                            fix: str = "pass the same flags (or --force to continue anyway)"
                            ) -> None:
    """``--resume``: one line naming the first setting (in sorted order) whose value differs
    from the saved run's; ``dashes`` writes it as a flag (``--lr``)."""
    for key in sorted((set(saved) | set(now)) - set(skip)):
        if saved.get(key) != now.get(key):
            name = f"--{key}" if dashes else key
            raise UserError(f"--resume: {name} is {now.get(key)!r} but the search in {root} "
                            f"used {saved.get(key)!r}; {fix}")


def check_resumable(root, state_file: str) -> None:
    """``--resume`` of a folder that holds no search: one line naming the fix."""
    if not os.path.isdir(str(root)):
        raise UserError(f"--resume: {root} does not exist")
    if not os.path.exists(os.path.join(str(root), state_file)):
        raise UserError(f"--resume: {root} holds no search state ({state_file} missing); "
                        "run without --resume to start a search")


def adopt_recorded_flags(args: argparse.Namespace, root, given: Optional[Set[str]],
                         folder: str) -> argparse.Namespace:
    """``--resume`` with the command line's flags (``given``): the flags not given take the
    values the run recorded in ``args.json``, in place. The flags given stay as given: the
    run's settings check (:func:`refuse_changed_settings`) refuses changed ones after it has
    checked the folder. Without ``given`` (a caller with a namespace) or a record, nothing
    changes."""
    if getattr(args, "resume", False) and given is not None:
        saved = read_args(root)
        for key, value in (saved or {}).items():
            if key in vars(args) and key not in given and key not in (folder, "resume", "force"):
                setattr(args, key, value)
    return args


def check_device(name: str) -> None:
    """``--device``: one line naming the fix for a device that is no device or not here,
    before a run creates anything."""
    from api.train.distributed import resolve_device  # torch, only for runs that use a device

    resolve_device(name)


def announce(root, plan: str, resumed: Optional[str] = None) -> None:
    """What every run prints before its work: where it writes (absolute), what it will do,
    and, resumed, what it found and what it redoes."""
    print(f"output: {os.path.abspath(str(root))}", flush=True)
    print(f"plan: {plan}", flush=True)
    if resumed:
        print(f"resumed: {resumed}", flush=True)


class Projection:
    """The run's projected wall time, said once after its first unit of work."""

    def __init__(self, unit: str, device: str = "") -> None:
        self.unit, self.device, self.said = unit, device, False

    def after(self, seconds: float, done: float, left: float, parallel: int = 1) -> None:
        """``done`` units took ``seconds`` in this process; ``left`` remain."""
        if self.said or done <= 0:
            return
        if left <= 0:  # nothing left to project
            self.said = True
            return
        from api.progress import duration

        self.said = True
        each = seconds / done
        rest = each * left / max(parallel, 1)
        line = (f"projected: about {duration(rest)} more for the {counted(left, self.unit)} "
                f"left (the first took {duration(each)})")
        if rest >= 3600 and self._on_cpu():
            line += ("; at this size on a CPU that is "
                     f"{'days' if rest >= 86400 else 'hours'}: shrink the run or use a GPU")
        print(line, flush=True)

    def _on_cpu(self) -> bool:
        """The run's device is the CPU (``auto`` resolves as the runs resolve it)."""
        if self.device == "auto":
            import torch

            return not torch.cuda.is_available()
        return self.device.startswith("cpu")


_interrupt_note: Optional[Callable[[], str]] = None


def on_interrupt(note: Optional[Callable[[], str]]) -> None:
    """Register what a Ctrl-C now leaves behind, in words (``None``: nothing to say); the CLI
    wrapper prints it, so the promise made is the one the run keeps."""
    global _interrupt_note
    _interrupt_note = note


def interrupt_message() -> str:
    """The line a Ctrl-C prints: what is saved and what ``--resume`` will redo."""
    note = _interrupt_note() if _interrupt_note is not None else None
    return f"interrupted: {note}" if note else "interrupted"


def counted(n: float, word: str) -> str:
    """``1 epoch``, ``3 epochs``: a count with its word."""
    return f"{n:g} {word}{'' if n == 1 else 's'}"
