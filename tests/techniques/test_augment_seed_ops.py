"""The augmentation ops practitioners' recipes name: random resized crop, HSV jitter, one-of, erase with a range
of holes, per-channel normalization; each checked for what it must do, and bad parameters refused at config time."""

from __future__ import annotations

import math

import pytest
import torch

from trainwise.config import Config
from trainwise.errors import UserError
from trainwise.techniques.augment import Pipeline, erase, hsv, hsv_to_rgb, normalize, one_of, random_resized_crop, rgb_to_hsv


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_resized_crop_zooms_into_a_box():
    # a horizontal ramp: a crop of a fraction of the width spans a smaller range of values, resized to full width
    ramp = torch.linspace(0, 1, 32).repeat(8, 3, 32, 1)
    out = random_resized_crop(ramp, scale=(0.25, 0.25), ratio=(1.0, 1.0), generator=gen())
    assert out.shape == ramp.shape
    spans = out[:, 0, 16].amax(1) - out[:, 0, 16].amin(1)
    assert torch.all(spans < 0.6) and torch.all(spans > 0.4)  # half the width (sqrt of a quarter of the area)
    same = random_resized_crop(ramp, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=gen())
    torch.testing.assert_close(same, ramp, atol=1e-5, rtol=0)  # the whole image: unchanged
    assert torch.equal(random_resized_crop(ramp, p=0.0, generator=gen()), ramp)


def test_hsv_round_trip_and_jitter():
    x = torch.rand(16, 3, 8, 8, generator=gen(1))
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(hsv(x, hue=0.0, saturation=0.0, value=0.0, generator=gen()), x, atol=1e-5, rtol=0)  # no jitter: unchanged
    darker = hsv(x, hue=0.0, saturation=0.0, value=0.5, generator=gen())
    v_in, v_out = rgb_to_hsv(x)[:, 2].mean((1, 2)), rgb_to_hsv(darker)[:, 2].mean((1, 2))
    assert not torch.allclose(v_in, v_out) and torch.all((v_out / v_in > 0.45) & (v_out / v_in < 1.55))
    # a pure hue shift keeps saturation and value
    shifted = hsv(x, hue=0.2, saturation=0.0, value=0.0, generator=gen())
    torch.testing.assert_close(rgb_to_hsv(shifted)[:, 1:], rgb_to_hsv(x)[:, 1:], atol=1e-4, rtol=0)
    gray = torch.rand(2, 1, 4, 4)
    scaled = hsv(gray, value=0.5, generator=gen()) / gray
    assert torch.allclose(scaled, scaled[:, :, :1, :1].expand_as(scaled), atol=1e-5)  # grayscale: one value factor per image


def test_one_of_applies_exactly_one_op_per_sample():
    x = torch.zeros(400, 1, 4, 4)
    ops = ({"op": "brightness", "strength": 1.0, "p": 3.0 / 4}, {"op": "erase", "value": 5.0, "size": [1.0, 1.0], "p": 1.0 / 4})
    # weights 0.75 / 0.25 (the ops' own p)
    out = one_of(x, p=1.0, ops=ops, generator=gen())
    erased = (out == 5.0).all(dim=(1, 2, 3))
    shifted = (out != 0).any(dim=(1, 2, 3)) & ~erased
    assert torch.all(erased ^ shifted)  # one op or the other, never both, never none
    assert 0.18 < erased.float().mean() < 0.32
    none = one_of(x, p=0.0, ops=ops, generator=gen())
    assert torch.equal(none, x)


def test_erase_with_a_range_of_holes():
    x = torch.ones(300, 1, 40, 40)
    out = erase(x, p=1.0, holes=(1, 3), size=(0.1, 0.1), generator=gen())  # 4x4 holes, 1 to 3 of them
    erased = (out == 0).sum(dim=(1, 2, 3))
    assert erased.min() >= 1 and erased.max() <= 3 * 16
    assert (erased <= 16).any() and (erased > 32).any()  # some samples got one hole, some three
    assert erase(x, p=0.7, holes=(1, 3), size=(0.05, 0.3), generator=gen()).eq(0).any(dim=(1, 2, 3)).float().mean().item() == pytest.approx(0.7, abs=0.08)


def test_normalize_per_channel():
    x = torch.rand(4, 3, 5, 5)
    out = normalize(x, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    torch.testing.assert_close(out[:, 1], (x[:, 1] - 0.456) / 0.224)
    torch.testing.assert_close(normalize(x, mean="imagenet", std="imagenet"), out)
    with pytest.raises(UserError, match="one mean and one std per channel"):
        normalize(torch.rand(2, 2, 4, 4), mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))


def test_a_seed_pipeline_runs_and_keeps_shapes():
    pipeline = Pipeline([
        {"op": "random_resized_crop", "scale": [0.5, 1.0]}, {"op": "hflip", "p": 0.5}, {"op": "hsv", "p": 0.5},
        {"op": "one_of", "p": 0.3, "ops": [{"op": "gaussian_blur"}, {"op": "motion_blur"}]},
        {"op": "erase", "p": 0.7, "holes": [1, 3], "size": [0.05, 0.3]},
        {"op": "normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    ])
    x = torch.rand(8, 3, 24, 24)
    out = pipeline(x, gen())
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert torch.equal(out, pipeline(x, gen()))  # seeded: the same draws


@pytest.mark.parametrize("spec, message", [
    ({"op": "random_resized_crop", "scale": [0.0, 1.0]}, "bad scale"),
    ({"op": "random_resized_crop", "scale": [0.9, 0.5]}, "bad scale"),
    ({"op": "random_resized_crop", "ratio": [-1, 2]}, "bad ratio"),
    ({"op": "hsv", "hue": 0.7}, "bad hue"),
    ({"op": "hsv", "saturation": -0.1}, "bad saturation"),
    ({"op": "erase", "holes": [3, 1]}, "bad holes"),
    ({"op": "erase", "holes": 0}, "bad holes"),
    ({"op": "erase", "size": [0.1, 1.5]}, "bad size"),
    ({"op": "motion_blur", "length": 4}, "bad length"),
    ({"op": "normalize", "mean": [0.5, 0.5], "std": [0.2, 0.2, 0.2]}, "bad std"),
    ({"op": "normalize", "std": [0.0]}, "bad std"),
    ({"op": "one_of", "ops": []}, "needs ops"),
    ({"op": "one_of", "ops": [{"op": "blurr"}]}, "unknown augmentation op 'blurr'"),
])
def test_bad_parameters_are_refused_when_the_config_is_read(spec, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        Config().replace({"augment.train": [spec]})
