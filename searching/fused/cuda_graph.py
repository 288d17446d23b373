"""CUDA-graph capture of a training step (forward, backward, optimizer), with an eager fallback.

Small proxy networks are launch-bound on a GPU; a CUDA graph records a step's kernels once and
replays them with one launch. :class:`GraphedStep` wraps a step function ``step(x, y)`` that
updates the model, optimizer and accumulators in place and returns nothing; per input shape it
warms up eagerly on a side stream, captures the step into static ``x``/``y`` buffers, then
copies each batch in and replays. Where capture is impossible (not CUDA, an optimizer it cannot
capture, a capture error) every step runs eagerly through the same function, and one line on
stderr says so; on CPU the results are therefore exactly the eager ones.
Design and measurements: bench/README.md (fused candidates, CUDA graphs).
"""
from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Callable, Dict, Optional, Tuple

import torch

_NOTED = False
_CAPTURE_LOCK = threading.Lock()  # one capture at a time in a process (a CUDA graph rule)


def note_fallback(reason: str) -> bool:
    """Print the one-line fallback note, the first time only; True when it was printed."""
    global _NOTED
    if _NOTED:
        return False
    _NOTED = True
    print(f"CUDA graphs: {reason}; training steps run eagerly", file=sys.stderr, flush=True)
    return True


def reset_fallback_note() -> None:
    """Let the next fallback print its note again (for tests)."""
    global _NOTED
    _NOTED = False


def unsupported_reason(optimizer: torch.optim.Optimizer, device: torch.device) -> Optional[str]:
    """Why a step with ``optimizer`` on ``device`` cannot be captured (None: it can)."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"not available on {device.type}"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if (getattr(optimizer, "capturable", False) or isinstance(optimizer, torch.optim.SGD)
            or "capturable" in getattr(optimizer, "defaults", {})):
        return None
    return f"{type(optimizer).__name__} cannot be captured (no capturable option)"


def make_capturable(optimizer: torch.optim.Optimizer) -> None:
    """Switch ``optimizer`` to ``capturable=True`` where it has the option; a step counter it
    already has moves to its parameter's device (capturable steps read it there)."""
    if "capturable" not in getattr(optimizer, "defaults", {}):
        return  # SGD, or an optimizer that is capturable as it is (``capturable = True``)
    for group in optimizer.param_groups:
        group["capturable"] = True
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            step = state.get("step")
            if torch.is_tensor(step) and step.device != p.device:
                state["step"] = step.to(p.device, torch.float32)


StepFn = Callable[[torch.Tensor, torch.Tensor], None]


class GraphedStep:
    """``step(x, y)`` replayed as a CUDA graph per input shape, or run eagerly (see module)."""

    def __init__(self, step: StepFn, optimizer: torch.optim.Optimizer, device,
                 warmup: int = 3) -> None:
        self.step = step
        self.optimizer = optimizer
        self.warmup = max(int(warmup), 1)
        self.graphs: Dict[tuple, Tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.eager_steps: Counter = Counter()  # warm-up steps run so far, per shape
        self.device = torch.device(device)
        self.reason = unsupported_reason(optimizer, self.device)
        self.side_stream = None
        if self.reason is None:
            make_capturable(optimizer)
            self.side_stream = torch.cuda.Stream(device=self.device)
        else:
            note_fallback(self.reason)

    @property
    def graphed(self) -> bool:
        """Whether steps are (or will be, after warm-up) replayed from graphs."""
        return self.reason is None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.reason is not None:
            self.step(x, y)
            return
        with torch.cuda.device(self.device):  # streams and graphs of the step's device
            self._graphed(x, y)

    def _graphed(self, x: torch.Tensor, y: torch.Tensor) -> None:
        key = (tuple(x.shape), x.stride(), x.dtype, tuple(y.shape), y.dtype)
        entry = self.graphs.get(key)
        if entry is None:
            if self.eager_steps[key] < self.warmup:
                self.eager_steps[key] += 1
                self._side_stream_step(x, y)
                return
            try:
                entry = self._capture(x, y)
            except Exception as e:  # noqa: BLE001 -- any capture failure means: run eagerly
                first_line = (str(e).splitlines() or [""])[0]
                self.reason = f"capture failed ({type(e).__name__}: {first_line})"
                self.graphs.clear()
                note_fallback(self.reason)
                self.optimizer.zero_grad(set_to_none=True)
                self.step(x, y)  # the capture ran nothing: this batch still trains
                return
            self.graphs[key] = entry
        graph, static_x, static_y = entry
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()

    def _side_stream_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        current = torch.cuda.current_stream()
        self.side_stream.wait_stream(current)
        with torch.cuda.stream(self.side_stream):
            self.step(x, y)
        current.wait_stream(self.side_stream)

    def _capture(self, x: torch.Tensor, y: torch.Tensor):
        static_x, static_y = x.clone(), y.clone()  # same shape, strides (layout) and dtype
        graph = torch.cuda.CUDAGraph()
        with _CAPTURE_LOCK:
            # gradients allocated inside the capture, from the graph's private pool
            self.optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                self.step(static_x, static_y)
        return graph, static_x, static_y
