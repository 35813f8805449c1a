import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, precision_score, recall_score

from trainwise.metrics import MetricAccumulator


@pytest.mark.parametrize("k, task", [(2, "binary"), (5, "multiclass")])
def test_metrics_match_sklearn(k, task):
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, 500)
    p = np.where(rng.random(500) < 0.7, y, rng.integers(0, k, 500))
    p[p == k - 1] = 0  # one class never predicted: precision 0 for it, as sklearn's zero_division=0
    acc = MetricAccumulator(k, torch.device("cpu"))
    for i in range(0, 500, 128):  # in batches, as in an epoch
        acc.update(torch.tensor(0.5), torch.from_numpy(p[i:i + 128]), torch.from_numpy(y[i:i + 128]))
    m = acc.compute(task)
    avg = "binary" if task == "binary" else "macro"
    assert m["acc"] == pytest.approx((p == y).mean())
    assert m["precision"] == pytest.approx(precision_score(y, p, average=avg, zero_division=0))
    assert m["recall"] == pytest.approx(recall_score(y, p, average=avg, zero_division=0))
    assert m["f1"] == pytest.approx(f1_score(y, p, average=avg, zero_division=0))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    assert m["loss"] == pytest.approx(0.5)


@pytest.mark.parametrize("task, k", [("binary", 2), ("multiclass", 4)])
def test_training_precision_recall_f1_come_from_the_device_confusion(task, k):
    """The per-epoch training metrics (one host read) equal the full evaluation metrics of the same batches."""
    g = torch.Generator().manual_seed(k)
    acc = MetricAccumulator(k, torch.device("cpu"))
    for _ in range(5):
        targets = torch.randint(0, k, (50,), generator=g)
        preds = torch.where(torch.rand(50, generator=g) < 0.7, targets, torch.randint(0, k, (50,), generator=g))
        acc.update(torch.tensor(0.5), preds, targets)
    quick, full = acc.compute_loss_acc(task), acc.compute(task)
    for key in ("loss", "acc", "precision", "recall", "f1"):
        assert quick[key] == pytest.approx(full[key], abs=1e-12), key


def test_history_records_training_f1(quiet):
    import trainwise

    run = trainwise.fit(trainwise.Config().replace({**quiet, "train.epochs": 2, "data.name": "breast_cancer"}))
    for r in run.history.records:
        assert 0.0 <= r["train_precision"] <= 1 and 0.0 <= r["train_recall"] <= 1 and 0.0 < r["train_f1"] <= 1
