"""Classification metrics accumulated on the device.

The training step must not wait for the GPU, so each batch writes its loss and class ids into device
buffers, folded into a loss sum and a confusion matrix (one scatter_add) when the host reads them, once
per epoch. A confusion matrix gives
every metric trainwise reports (accuracy, precision, recall, F1, macro-F1); tests check them against scikit-learn.

Definitions: accuracy = trace / total. Binary: precision, recall and F1 of the positive class (label 1);
macro_f1 = mean F1 over both classes. Multiclass: precision, recall and F1 are macro averages over
classes (a class never predicted has precision 0), so f1 == macro_f1.
"""

from __future__ import annotations

import numpy as np
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
    """The loss sum and confusion matrix of an epoch's training (or an evaluation), kept on the device.

    ``update`` does the least per step: it keeps (detached) references to the batch's mean loss, its
    logits or predicted ids and its true ids, and nothing else (no kernel, no host sync). ``loss_sum`` and
    ``confusion`` are made from them when they are read (``fold``: one concatenation, one argmax, one
    scatter): once per epoch, checkpoint or evaluation, or when the kept logits reach ``FOLD_ELEMENTS``
    (so an epoch of a large model holds a few MB at most). On the small CPU MLPs of
    benchmarks/overhead_cpu.py the three per-step copies into buffers that this replaces took 25-35 us of
    a 0.85 ms step. The tensors passed in must not be changed in place afterwards: an eager step makes
    new ones every step; a replayed CUDA graph passes copies.
    """

    FOLD_ELEMENTS = 1 << 22  # kept logits (elements) that trigger a fold: 16 MB of float32

    def __init__(self, num_classes: int, device: torch.device):
        self.k = num_classes
        self.device = device
        self._fold_at = max(self.FOLD_ELEMENTS // max(num_classes, 1), 1)  # kept samples
        self.reset()

    def reset(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self._confusion = torch.zeros(self.k * self.k, device=self.device, dtype=torch.long)
        self.count = 0
        self._kind = "multiclass"  # what the kept scores are: "multiclass" or "binary" logits, or "ids"
        self._clear_pending()

    def _clear_pending(self) -> None:
        # New lists, not clear(): a shallow copy (a data-parallel total) that folds leaves the original's intact.
        self._losses, self._scores, self._targets, self._sizes = [], [], [], []
        self._samples = 0

    def update(self, loss: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor) -> None:
        """``loss`` is the batch mean (weighted by the batch size when folded, so the epoch mean is exact);
        ``preds`` and ``targets`` are class ids."""
        self.update_from_logits(loss, preds, targets, "ids")

    def update_from_logits(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, task: str) -> None:
        """As ``update``, with the predicted ids taken from ``logits`` (argmax, binary: logit > 0) when folded
        (``task = "ids"``: ``logits`` are the ids already)."""
        if task != self._kind:
            self.fold()  # one kind per fold, so that the kept scores concatenate
            self._kind = task
        n = targets.shape[0]
        self._losses.append(loss.detach())
        self._scores.append(logits.detach())
        self._targets.append(targets)
        self._sizes.append(n)
        self.count += n
        self._samples += n
        if self._samples >= self._fold_at:
            self.fold()

    def fold(self) -> None:
        """Add the steps kept since the last fold to the loss sum and the confusion matrix.

        Out of place, so a shallow copy (a data-parallel total) folds without touching the original."""
        if not self._sizes:
            return
        sizes = torch.tensor(self._sizes, dtype=torch.float64).to(self.device, non_blocking=True)
        losses = torch.stack(self._losses).reshape(-1).double()  # one element per step (0-d or (1,))
        self._loss_sum = self._loss_sum + (losses * sizes).sum()
        scores = torch.cat(self._scores)
        preds = scores.argmax(dim=1) if self._kind == "multiclass" else (scores.reshape(-1) > 0) if self._kind == "binary" else scores
        # scatter_add into a fixed-size tensor: bincount on CUDA reads the maximum back to the host.
        index = torch.add(preds.long(), torch.cat(self._targets).long(), alpha=self.k)  # targets * k + preds
        self._confusion = self._confusion.scatter_add(0, index, torch.ones_like(index))
        self._clear_pending()

    @property
    def loss_sum(self) -> torch.Tensor:
        self.fold()
        return self._loss_sum

    @loss_sum.setter
    def loss_sum(self, value: torch.Tensor) -> None:
        self.fold()
        self._loss_sum = value

    @property
    def confusion(self) -> torch.Tensor:
        self.fold()
        return self._confusion

    @confusion.setter
    def confusion(self, value: torch.Tensor) -> None:
        self.fold()
        self._confusion = value

    def compute_loss_acc(self, task: str = "multiclass") -> dict:
        """The training metrics of an epoch: mean loss, accuracy, precision, recall and F1 (as ``compute``
        defines them), from the same one host transfer."""
        metrics = self.compute(task)
        return {key: metrics[key] for key in ("loss", "acc", "precision", "recall", "f1")}

    def compute(self, task: str) -> dict:
        """One host transfer; returns plain floats and the confusion matrix as nested lists."""
        packed = torch.cat([self.loss_sum.view(1), self.confusion.double()]).cpu().numpy()
        return metrics_from_confusion(packed[1:].reshape(self.k, self.k), task) | {"loss": float(packed[0]) / max(self.count, 1)}

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


def _precision_recall_f1(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 of a (K, K) float64 confusion matrix (rows: true class); 0 where undefined."""
    tp = np.diag(c)
    predicted, actual = c.sum(0), c.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return precision, recall, f1


def metrics_from_confusion(confusion: torch.Tensor | np.ndarray, task: str) -> dict:
    c = np.asarray(confusion.cpu() if isinstance(confusion, torch.Tensor) else confusion, dtype=np.float64)
    precision, recall, f1 = _precision_recall_f1(c)
    out = {
        "acc": float(np.trace(c) / max(c.sum(), 1)),
        "macro_f1": float(f1.mean()),
        "per_class_precision": precision.tolist(),
        "per_class_recall": recall.tolist(),
        "per_class_f1": f1.tolist(),
        "confusion": c.astype(np.int64).tolist(),
    }
    pick = (lambda t: t[1]) if task == "binary" else (lambda t: t.mean())  # noqa: E731
    return out | {"precision": float(pick(precision)), "recall": float(pick(recall)), "f1": float(pick(f1))}
