import numpy as np
import pytest
import torch

import trainwise
from trainwise.config import ModelConfig
from trainwise.errors import UserError
from trainwise.models import MODELS, build_model


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 32, 32), (3, 32, 32)])
def test_registered_models_forward(name, shape):
    cfg = ModelConfig(name=name, channels=[8, 16], hidden=[16], dropout=0.1, batch_norm=True, drop_path=0.1)
    feature_dim = 5 if name == "fusion" else 0
    model = build_model(cfg, shape, feature_dim, 7)
    inputs = (torch.randn(4, *shape),) + ((torch.randn(4, 5),) if feature_dim else ())
    assert model(*inputs).shape == (4, 7)


def test_per_layer_dropout_and_batch_norm():
    model = build_model(ModelConfig(hidden=[16, 8], dropout=[0.1, 0.5], batch_norm=True), (10,), 0, 3)
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.1, 0.5] and sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == 2
    with pytest.raises(UserError, match="one rate or 2"):
        build_model(ModelConfig(hidden=[16, 8], dropout=[0.1]), (10,), 0, 3)


def tiny_factory(input_shape, out_dim, width=16):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(np.prod(input_shape)), width), torch.nn.ReLU(), torch.nn.Linear(width, out_dim))


def test_factory_by_import_path(quiet):
    run = trainwise.fit(model__name="tests.test_models:tiny_factory", model__kwargs={"width": 24}, train__epochs=2,
                        **{k.replace(".", "__"): v for k, v in quiet.items()})
    assert run.model[1].out_features == 24 and run.summary["test"]["acc"] > 0.5


def test_bad_factory_and_mismatched_output(quiet):
    with pytest.raises(UserError, match="cannot import model factory"):
        trainwise.fit(model__name="nowhere.module:make", train__epochs=1)
    wrong = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    with pytest.raises(UserError, match=r"10 logits .*received output shaped \(2, 4\)"):
        trainwise.fit(model=wrong, train__epochs=1)
    wrong_input = torch.nn.Linear(10, 10)
    with pytest.raises(UserError, match="cannot take the data's inputs"):
        trainwise.fit(model=wrong_input, train__epochs=1)


def test_user_module_and_tensors_with_extra_features(quiet):
    """A model with an extra input beside the image, fed (image, features, y) tensors."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.tensor(d.images[:, None] / 16.0, dtype=torch.float32)
    features = torch.stack([images.mean((1, 2, 3)), images.std((1, 2, 3)), images[:, :, :, :4].mean((1, 2, 3))], 1)
    y = torch.tensor(d.target)
    tr, te = slice(0, 1400), slice(1400, None)
    cfg = trainwise.Config().replace({**quiet, "train.epochs": 10, "model.name": "fusion", "model.channels": [16, 32], "model.batch_norm": True, "optim.lr": 3e-3})
    run = trainwise.fit(cfg, train=(images[tr], features[tr], y[tr]), test=(images[te], features[te], y[te]))
    assert run.summary["test"]["acc"] > 0.85
