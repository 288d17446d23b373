"""The CNN proxy with its training step replayed as a CUDA graph (``--cuda_graphs``).

:class:`GraphedCNNProxyEvaluator` is the proxy evaluator with two hooks replaced: its step is a
:class:`~searching.fused.cuda_graph.GraphedStep` around the proxy's own step (autocast's cast
cache off: it cannot live across a capture), and a graphed run validates in batches of
:data:`GRAPH_VAL_BATCH` summed on the device and read back once. Where capture is impossible
(CPU included) the steps run eagerly and validation is the proxy's own, so the results are
the eager ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from api.datasets import DeviceBatches
from searching.cnn.proxy import CNNProxyEvaluator, TrainStep
from searching.fused.cuda_graph import GraphedStep

GRAPH_VAL_BATCH = 1000  # validation batch when graphed (eval mode: per-image results)


class GraphedTrainStep:
    """The proxy's :class:`TrainStep` replayed through a :class:`GraphedStep`; its sums
    (``total_loss``, ``correct``, ``reset``) are the inner step's."""

    def __init__(self, model, opt, amp: bool, device: torch.device) -> None:
        self.inner = TrainStep(model, opt, amp, device, amp_cache=False)
        self.replay = GraphedStep(self.inner, opt, device)

    @property
    def graphed(self) -> bool:
        return self.replay.graphed

    @property
    def total_loss(self) -> torch.Tensor:
        return self.inner.total_loss

    @property
    def correct(self) -> torch.Tensor:
        return self.inner.correct

    def reset(self) -> None:
        self.inner.reset()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.replay(x, y)


class GraphedCNNProxyEvaluator(CNNProxyEvaluator):
    """The CNN proxy evaluator whose training step is a CUDA graph where one can be captured."""

    @classmethod
    def from_evaluator(cls, evaluator: CNNProxyEvaluator) -> "GraphedCNNProxyEvaluator":
        graphed = cls(evaluator.data, evaluator.spec, evaluator.config)
        graphed.__dict__.update(evaluator.__dict__)  # threads and any other settings
        return graphed

    def make_step(self, model, opt, amp: bool, device: torch.device) -> GraphedTrainStep:
        return GraphedTrainStep(model, opt, amp, device)

    def validation(self, step):
        graphed = getattr(step, "graphed", False)
        return self.validate_batched if graphed else self._validate

    @torch.no_grad()
    def validate_batched(self, model, data: DeviceBatches, amp: bool, fmt):
        """The proxy's validation in batches of at least :data:`GRAPH_VAL_BATCH`, summed on
        the device and read back once (per-batch reads would dominate a graphed run)."""
        model.eval()
        device = data.y.device
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for x, y in data.batches(max(self.config.val_batch_size, GRAPH_VAL_BATCH)):
            x = x.contiguous(memory_format=fmt)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                logits = model(x).float()
            total_loss += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
        loss_sum, count = torch.stack([total_loss.double(), correct.double()]).tolist()
        n = len(data)
        return loss_sum / n, int(count) / n


__all__ = ["GRAPH_VAL_BATCH", "GraphedCNNProxyEvaluator", "GraphedTrainStep"]
