"""Top-k accuracy and the metrics log of a training run.

``metrics.jsonl`` gets one JSON line per epoch (appended and fsynced, so a crash loses at most
the epoch in flight). An epoch is logged before its checkpoint is written, so a resumed run
first drops the records after the checkpoint's epoch (:meth:`MetricsLog.keep_until`): it trains
those epochs again and logs them once. ``final_metrics.json`` is written atomically once the
run ends.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import torch

from api.runs.atomic_io import append_jsonl, atomic_write_json, read_jsonl, write_jsonl


@torch.no_grad()
def topk_correct(logits: torch.Tensor, target: torch.Tensor,
                 ks: Sequence[int] = (1, 5)) -> torch.Tensor:
    """Number of samples whose target is among the top-k logits, one count per k.

    Counts (not rates) so that shards of an evaluation can be summed across ranks. A k larger
    than the number of classes counts every sample.
    """
    kmax = min(max(ks), logits.shape[1])
    pred = logits.topk(kmax, dim=1).indices
    hit = pred.eq(target.view(-1, 1))
    return torch.stack([hit[:, :min(k, kmax)].any(dim=1).sum() for k in ks])


def topk_accuracy(logits: torch.Tensor, target: torch.Tensor,
                  ks: Sequence[int] = (1, 5)) -> Dict[int, float]:
    """Top-k accuracy as fractions, keyed by k."""
    counts = topk_correct(logits, target, ks).tolist()
    return {k: c / max(1, len(target)) for k, c in zip(ks, counts)}


class MetricsLog:
    """``metrics.jsonl`` (one record per epoch) and ``final_metrics.json`` in ``output``."""

    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.jsonl = self.output / "metrics.jsonl"
        self.final = self.output / "final_metrics.json"

    def log(self, record: Dict) -> None:
        append_jsonl(self.jsonl, record)

    def records(self):
        return read_jsonl(self.jsonl)

    def keep_until(self, epoch: int) -> None:
        """Drop the records of epochs after ``epoch`` (logged by a run that died before their
        checkpoint): the resumed run trains them again and logs them anew. Rewritten whole,
        which also drops a torn last line that later appends would otherwise bury."""
        write_jsonl(self.jsonl, [r for r in self.records() if r["epoch"] <= epoch])

    def write_final(self, record: Dict) -> None:
        atomic_write_json(self.final, record)
