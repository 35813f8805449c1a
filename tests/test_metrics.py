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


def test_deferred_sums_grow_fold_and_copy_like_an_eager_sum():
    """Per-step records are folded when read: many uneven batches (the buffers grow several times), reads
    in between, a shallow copy folded on its own (a data-parallel total) leaving the original intact."""
    import copy

    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    logits = torch.from_numpy(x[:, :10]).float() - 8.0  # arbitrary but real scores for 10 classes
    targets = torch.from_numpy(y).long()
    acc = MetricAccumulator(10, torch.device("cpu"))
    losses, sizes, start = [], [], 0
    for step, n in enumerate([1, 7, 64, 3, 300, 64, 129] * 4):
        lo, hi = start % len(y), min(start % len(y) + n, len(y))
        loss = torch.tensor(0.1 * step + 0.5)
        acc.update_from_logits(loss, logits[lo:hi], targets[lo:hi], "multiclass")
        losses.append(0.1 * step + 0.5), sizes.append(hi - lo)
        start += n
        if step == 10:
            shallow = copy.copy(acc)
            assert float(shallow.loss_sum) == pytest.approx(sum(a * b for a, b in zip(losses, sizes)))
    expected = np.zeros((10, 10), dtype=np.int64)
    start = 0
    for n in [1, 7, 64, 3, 300, 64, 129] * 4:
        lo, hi = start % len(y), min(start % len(y) + n, len(y))
        np.add.at(expected, (y[lo:hi], logits[lo:hi].argmax(1).numpy()), 1)
        start += n
    assert float(acc.loss_sum) == pytest.approx(sum(a * b for a, b in zip(losses, sizes)))
    assert (acc.confusion.view(10, 10).numpy() == expected).all()
    assert acc.count == sum(sizes) == int(acc.confusion.sum())


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_training_metrics_on_python_floats_equal_the_numpy_ones(task):
    """The epoch's training metrics of a few classes (worked out on Python floats) are the very floats of
    the full evaluation (numpy), for confusion matrices with empty rows and columns."""
    from trainwise.metrics import PLAIN_PYTHON_CLASSES, loss_acc_from_confusion, metrics_from_confusion

    rng = np.random.default_rng(1)
    for k in [2] if task == "binary" else [3, 7, 8, 9, 10, 17, PLAIN_PYTHON_CLASSES]:
        for _ in range(20):
            c = rng.integers(0, 50, (k, k)) * (rng.random((k, k)) < 0.6)
            c[rng.integers(0, k)] = 0  # a class never seen
            c[:, rng.integers(0, k)] = 0  # a class never predicted
            full = metrics_from_confusion(c.astype(np.float64), task)
            quick = loss_acc_from_confusion(c.astype(np.float64).reshape(-1).tolist(), k, task)
            assert quick == {key: full[key] for key in ("acc", "precision", "recall", "f1")}


def test_numpy_mean_is_numpys_mean_bit_for_bit():
    from trainwise.metrics import numpy_mean

    rng = np.random.default_rng(2)
    for n in list(range(1, 130)) * 20:
        a = rng.random(n) * rng.integers(0, 2, n) * 10.0 ** rng.integers(-3, 3, n)
        assert numpy_mean(a.tolist()) == a.mean(), n


def test_predicted_ids_are_torchs_argmax_with_ties_and_nans():
    from trainwise.metrics import _argmax_rows

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (500, 10), generator=g).float()  # many ties
    scores[torch.rand(500, 10, generator=g) < 0.05] = float("nan")
    scores[7] = float("-inf")
    for s in (scores, scores.double(), scores[:, :1]):
        assert torch.equal(_argmax_rows(s), s.argmax(dim=1))
