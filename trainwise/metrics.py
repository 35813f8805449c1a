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

import math

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
        # None stands for zero until the first fold: no tensors made at every epoch's start.
        self._loss_sum: torch.Tensor | None = None
        self._confusion: torch.Tensor | None = None
        self.count = 0
        self._kind = "multiclass"  # what the kept scores are: "multiclass" or "binary" logits, or "ids"
        self._clear_pending()

    def _clear_pending(self) -> None:
        # A new list, not clear(): a shallow copy (a data-parallel total) that folds leaves the original's intact.
        self._pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (loss, scores, targets) per step
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
        self._pending.append((loss.detach(), logits.detach(), targets))
        self.count += n
        self._samples += n
        if self._samples >= self._fold_at:
            self.fold()

    def fold(self) -> None:
        """Add the steps kept since the last fold to the loss sum and the confusion matrix.

        Out of place, so a shallow copy (a data-parallel total) folds without touching the original."""
        if not self._pending:
            return
        # Inside the training loop each torch call here costs 10-70 us (its code has left the caches during
        # the steps), so calls that would change nothing (.long() of longs, a CPU tensor .to the CPU) are left out.
        losses, scores, targets = zip(*self._pending)
        sizes = torch.tensor([t.shape[0] for t in targets], dtype=torch.float64)
        if self.device.type != "cpu":
            sizes = sizes.to(self.device, non_blocking=True)
        losses = torch.stack(losses)
        if losses.ndim != 1:
            losses = losses.reshape(-1)  # one element per step (0-d or (1,))
        loss_sum = (losses.double() * sizes).sum()
        self._loss_sum = loss_sum if self._loss_sum is None else self._loss_sum + loss_sum
        scores = torch.cat(scores)
        if self._kind == "multiclass":
            preds = _argmax_rows(scores)
        else:
            preds = (scores.reshape(-1) > 0) if self._kind == "binary" else scores
        index = torch.add(_as_long(preds), _as_long(torch.cat(targets)), alpha=self.k)  # targets * k + preds
        if self.device.type == "cpu":
            counts = torch.bincount(index, minlength=self.k * self.k)  # one kernel instead of ones_like and a scatter
        else:  # scatter_add into a fixed-size tensor: bincount on CUDA reads the maximum back to the host
            counts = torch.zeros(self.k * self.k, device=self.device, dtype=torch.long).scatter_add_(0, index, torch.ones_like(index))
        self._confusion = counts if self._confusion is None else self._confusion + counts
        self._clear_pending()

    @property
    def loss_sum(self) -> torch.Tensor:
        self.fold()
        if self._loss_sum is None:
            self._loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        return self._loss_sum

    @loss_sum.setter
    def loss_sum(self, value: torch.Tensor) -> None:
        self.fold()
        self._loss_sum = value

    @property
    def confusion(self) -> torch.Tensor:
        self.fold()
        if self._confusion is None:
            self._confusion = torch.zeros(self.k * self.k, device=self.device, dtype=torch.long)
        return self._confusion

    @confusion.setter
    def confusion(self, value: torch.Tensor) -> None:
        self.fold()
        self._confusion = value

    def compute_loss_acc(self, task: str = "multiclass") -> dict:
        """The training metrics of an epoch: mean loss, accuracy, precision, recall and F1 (as ``compute``
        defines them, the same floats), from the same one host transfer."""
        if self.k > PLAIN_PYTHON_CLASSES:
            metrics = self.compute(task)
            return {key: metrics[key] for key in ("loss", "acc", "precision", "recall", "f1")}
        values = torch.cat([self.loss_sum.view(1), self.confusion.double()]).tolist()
        return {"loss": values[0] / max(self.count, 1), **loss_acc_from_confusion(values[1:], self.k, task)}

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


def _argmax_rows(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(dim=1)``; on the CPU numpy's, the same ids (the first maximum, a NaN counting as the
    maximum) in a third of the time (torch's reduction over 10 classes took about 45 us for an epoch of digits)."""
    if scores.device.type == "cpu" and scores.dtype in (torch.float32, torch.float64) and not scores.requires_grad:
        return torch.from_numpy(scores.numpy().argmax(axis=1))
    return scores.argmax(dim=1)


def _as_long(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.int64 else t.long()


# Up to this many classes the epoch's training metrics are worked out on Python floats: inside the training
# loop each numpy call costs tens of microseconds (its code has left the caches during the steps), and the
# dozen calls of metrics_from_confusion took about 240 us of a digits epoch (23 steps of 0.9 ms).
PLAIN_PYTHON_CLASSES = 64


def loss_acc_from_confusion(flat: list[float], k: int, task: str) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of a row-major (K, K) confusion matrix given as K*K floats: the
    floats ``metrics_from_confusion`` gives (the same operations in the same order; sums of counts are
    exact; the macro means are numpy's)."""
    rows = [flat[i * k : (i + 1) * k] for i in range(k)]
    tp = [rows[i][i] for i in range(k)]
    actual = [sum(r) for r in rows]
    predicted = [sum(col) for col in zip(*rows)]
    precision = [t / n if n > 0 else 0.0 for t, n in zip(tp, predicted)]
    recall = [t / n if n > 0 else 0.0 for t, n in zip(tp, actual)]
    f1 = [2 * p * r / (p + r) if p + r > 0 else 0.0 for p, r in zip(precision, recall)]
    if task == "binary":
        p, r, f = precision[1], recall[1], f1[1]
    else:
        p, r, f = (numpy_mean(v) for v in (precision, recall, f1))
    return {"acc": sum(tp) / max(sum(actual), 1), "precision": p, "recall": r, "f1": f}


def numpy_mean(values: list[float]) -> float:
    """``np.mean`` of at most 128 floats, bit for bit: numpy's pairwise summation, which below its block of
    128 adds eight running sums (fewer than eight values: one), then divides by the count. A numpy call costs
    about 100 us inside the training loop, where its code has left the caches; this costs a few."""
    n = len(values)
    if n > 128:
        return float(np.mean(values))
    if n < 8:
        total = 0.0
        for v in values:
            total += v
        return total / n if n else math.nan
    r = values[:8]
    i, full = 8, n - n % 8
    while i < full:
        for j in range(8):
            r[j] += values[i + j]
        i += 8
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for v in values[i:]:
        total += v
    return total / n


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
