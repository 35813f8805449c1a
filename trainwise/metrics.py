"""Classification metrics accumulated on the device.

The training step must not wait for the GPU, so batches add to device tensors (a loss sum and a
confusion matrix, via one scatter_add) and the host reads them once per epoch. A confusion matrix gives
every metric trainwise reports (accuracy, precision, recall, F1, macro-F1); tests check them against scikit-learn.

Definitions: accuracy = trace / total. Binary: precision, recall and F1 of the positive class (label 1);
macro_f1 = mean F1 over both classes. Multiclass: precision, recall and F1 are macro averages over
classes (a class never predicted has precision 0), so f1 == macro_f1.
"""

from __future__ import annotations

import torch

# Every key a trainwise History holds, by its base name (see ``base_key``): "max" where larger is better,
# "min" where smaller is better, None where the key is not a score (counters, settings, diagnostics).
DIRECTIONS: dict[str, str | None] = {
    "loss": "min", "acc": "max", "precision": "max", "recall": "max", "f1": "max", "macro_f1": "max", "auc": "max",
    "epoch": None, "step": None, "lr": None, "time_s": None, "samples_per_s": None, "phase": None,
    "nonfinite_steps": None, "event": None, "nan_rollbacks": None,
    "grad_norm": None, "update_ratio": None, "dead_frac": None, "saturated_frac": None,
}
_SPLITS = ("train_", "val_", "test_")


def base_key(key: str) -> str:
    """The metric a History key measures: ``val_macro_f1_ema`` -> ``macro_f1``, ``grad_norm/net.0`` -> ``grad_norm``."""
    key = key.split("/", 1)[0].removesuffix("_ema")
    for split in _SPLITS:
        if key.startswith(split):
            return key[len(split):]
    return key


def direction(key: str) -> str | None:
    """Is larger better ("max"), smaller ("min"), or is ``key`` no score (None)?

    The one answer for early stopping, best checkpoints, plateau schedules, EMA, compare and search.
    A key of the user's own callbacks is judged by its name's ending (``*_loss`` min, ``*acc``/``*f1``/
    ``*precision``/``*recall``/``*auc`` max); anything else is taken as a loss-like "min".
    """
    base = base_key(key)
    if base in DIRECTIONS:
        return DIRECTIONS[base]
    return "max" if base.endswith(("acc", "f1", "precision", "recall", "auc")) else "min"


def resolve_mode(monitor: str, mode: str = "auto") -> str:
    """``mode`` itself, or under "auto" the monitored key's direction (a key that is no score: "min")."""
    if mode != "auto":
        return mode
    return direction(monitor) or "min"


class MetricAccumulator:
    def __init__(self, num_classes: int, device: torch.device):
        self.k = num_classes
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self.confusion = torch.zeros(self.k * self.k, device=self.device, dtype=torch.long)
        self.count = 0

    def update(self, loss: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor) -> None:
        """``loss`` is the batch mean; the sum is weighted by batch size so the epoch mean is exact."""
        n = targets.shape[0]
        self.loss_sum.add_(loss.detach(), alpha=n)  # one kernel; the float64 sum keeps long epochs exact
        # scatter_add into a fixed-size tensor: bincount on CUDA reads the maximum back to the host.
        index = torch.add(preds, targets, alpha=self.k)  # targets * k + preds in one kernel
        self.confusion.scatter_add_(0, index, self._ones(n))
        self.count += n

    def _ones(self, n: int) -> torch.Tensor:
        # Reused across steps (batches have one or two sizes): one allocation fewer per step.
        if getattr(self, "_ones_cache", None) is None or self._ones_cache.shape[0] < n:
            self._ones_cache = torch.ones(n, dtype=torch.long, device=self.device)
        return self._ones_cache[:n]

    def compute_loss_acc(self, task: str = "multiclass") -> dict:
        """The training metrics of an epoch: mean loss, accuracy, precision, recall and F1 (as ``compute``
        defines them), computed on the device from the confusion matrix and read in one host transfer."""
        c = self.confusion.view(self.k, self.k).double()
        precision, recall, f1 = _precision_recall_f1(c)
        pick = (lambda t: t[1]) if task == "binary" else (lambda t: t.mean())  # noqa: E731
        loss_sum, correct, total, p, r, f = torch.stack([self.loss_sum, c.diag().sum(), c.sum(), pick(precision), pick(recall),
                                                         pick(f1)]).tolist()
        return {"loss": loss_sum / max(self.count, 1), "acc": correct / max(total, 1), "precision": p, "recall": r, "f1": f}

    def compute(self, task: str) -> dict:
        """One host transfer; returns plain floats and the confusion matrix as nested lists."""
        loss_sum, confusion = self.loss_sum.item(), self.confusion.view(self.k, self.k).cpu()
        return metrics_from_confusion(confusion, task) | {"loss": loss_sum / max(self.count, 1)}

    def all_reduce_(self, group=None) -> MetricAccumulator:
        """Replace the sums with their totals over the processes of a data-parallel run (one collective).

        Each process accumulated only its own samples, so the totals count every sample exactly once.
        Counts travel as float64, exact below 2**53.
        """
        import torch.distributed as dist

        packed = torch.cat([self.loss_sum.view(1), self.confusion.double(), self.loss_sum.new_tensor([self.count])])
        dist.all_reduce(packed, group=group)
        self.loss_sum = packed[0].clone()
        self.confusion = packed[1:-1].round().long()
        self.count = int(packed[-1].item())
        return self


def _precision_recall_f1(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class precision, recall and F1 of a (K, K) float confusion matrix (rows: true class), where it lives."""
    tp = c.diag()
    predicted = c.sum(0)
    actual = c.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), torch.zeros_like(tp))
    return precision, recall, f1


def metrics_from_confusion(confusion: torch.Tensor, task: str) -> dict:
    c = confusion.double()
    total = c.sum().clamp(min=1)
    tp = c.diag()
    precision, recall, f1 = _precision_recall_f1(c)
    out = {
        "acc": (tp.sum() / total).item(),
        "macro_f1": f1.mean().item(),
        "per_class_precision": precision.tolist(),
        "per_class_recall": recall.tolist(),
        "per_class_f1": f1.tolist(),
        "confusion": confusion.long().tolist(),
    }
    if task == "binary":
        out |= {"precision": precision[1].item(), "recall": recall[1].item(), "f1": f1[1].item()}
    else:
        out |= {"precision": precision.mean().item(), "recall": recall.mean().item(), "f1": f1.mean().item()}
    return out
