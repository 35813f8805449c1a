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

    ``update`` does the least per step: it writes the batch's mean loss and its predicted and true class
    ids into preallocated device buffers (three small copies; no float64 arithmetic, no scatter, no host
    sync). ``loss_sum`` and ``confusion`` are made from the buffers when they are read (``fold``): once
    per epoch, checkpoint or evaluation. On small CPU models a step's metrics cost about half of what
    summing into a float64 loss and a scatter into the confusion matrix at every step cost.
    """

    def __init__(self, num_classes: int, device: torch.device):
        self.k = num_classes
        self.device = device
        self._loss_buf = torch.zeros(0, device=device)
        self._pred_buf = torch.zeros(0, device=device, dtype=torch.long)
        self._true_buf = torch.zeros(0, device=device, dtype=torch.long)
        self.reset()

    def reset(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self._confusion = torch.zeros(self.k * self.k, device=self.device, dtype=torch.long)
        self.count = 0
        self._clear_pending()

    def _clear_pending(self) -> None:
        self._steps, self._samples, self._sizes = 0, 0, []

    def update(self, loss: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor) -> None:
        """``loss`` is the batch mean (weighted by the batch size when folded, so the epoch mean is exact);
        ``preds`` and ``targets`` are class ids."""
        lo, hi = self._reserve(targets.shape[0])
        self._pred_buf[lo:hi].copy_(preds)
        self._record(loss, targets, lo, hi)

    def update_from_logits(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, task: str) -> None:
        """As ``update``, with the predicted ids taken from ``logits`` straight into the buffer (one kernel)."""
        lo, hi = self._reserve(targets.shape[0])
        if task == "binary":
            self._pred_buf[lo:hi].copy_(logits.reshape(-1) > 0)
        else:
            torch.argmax(logits.detach(), dim=1, out=self._pred_buf[lo:hi])
        self._record(loss, targets, lo, hi)

    def _reserve(self, n: int) -> tuple[int, int]:
        lo, hi = self._samples, self._samples + n
        if self._steps >= self._loss_buf.shape[0] or hi > self._pred_buf.shape[0]:
            self._grow(self._steps + 1, hi)
        return lo, hi

    def _record(self, loss: torch.Tensor, targets: torch.Tensor, lo: int, hi: int) -> None:
        self._loss_buf[self._steps].copy_(loss.detach())
        self._true_buf[lo:hi].copy_(targets)
        self._sizes.append(hi - lo)
        self._steps += 1
        self._samples = hi
        self.count += hi - lo

    def _grow(self, steps: int, samples: int) -> None:
        """Double the buffers (an epoch of a few hundred steps allocates a handful of times, then never)."""
        def grown(buf: torch.Tensor, need: int) -> torch.Tensor:
            if need <= buf.shape[0]:
                return buf
            new = torch.zeros(max(need, 2 * buf.shape[0], 256), device=self.device, dtype=buf.dtype)
            new[: buf.shape[0]] = buf
            return new

        self._loss_buf = grown(self._loss_buf, steps)
        self._pred_buf, self._true_buf = grown(self._pred_buf, samples), grown(self._true_buf, samples)

    def fold(self) -> None:
        """Add the steps recorded since the last fold to the loss sum and the confusion matrix.

        Out of place, so a shallow copy (a data-parallel total) folds without touching the original."""
        if not self._steps:
            return
        s, m = self._steps, self._samples
        sizes = torch.tensor(self._sizes, dtype=torch.float64).to(self.device, non_blocking=True)
        self._loss_sum = self._loss_sum + (self._loss_buf[:s].double() * sizes).sum()
        # scatter_add into a fixed-size tensor: bincount on CUDA reads the maximum back to the host.
        index = torch.add(self._pred_buf[:m], self._true_buf[:m], alpha=self.k)  # targets * k + preds
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
