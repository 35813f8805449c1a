"""The Trainer with no extras must produce bit-identical weights to a hand-written loop."""

import torch
import torch.nn.functional as F

import trainwise
from trainwise.config import Config
from trainwise.data import prepare_data
from trainwise.data.loader import epoch_order
from trainwise.models import build_model


def hand_written_loop(cfg: Config, epochs: int) -> dict:
    data = prepare_data(cfg.data)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, data.input_shape, 0, data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum, nesterov=cfg.optim.nesterov)
    x, y = data.train.inputs[0], data.train.targets
    bs = cfg.data.batch_size
    for epoch in range(1, epochs + 1):
        order = epoch_order(len(y), cfg.train.seed, epoch)
        for i in range(0, len(y), bs):
            idx = order[i : i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return model.state_dict()


def test_trainer_matches_hand_written_loop_bit_for_bit(quiet):
    cfg = Config().replace({**quiet, "optim.name": "sgd", "optim.lr": 0.05, "optim.nesterov": True,
                            "model.dropout": 0.2, "train.epochs": 3, "train.seed": 7})
    expected = hand_written_loop(cfg, 3)
    run = trainwise.fit(cfg)
    got = run.model.state_dict()
    assert got.keys() == expected.keys()
    for k in got:
        assert torch.equal(got[k], expected[k]), k
