"""Each augmentation op against a hand computation or an exact property."""

import math

import pytest
import torch

from trainwise.errors import UserError
from trainwise.techniques import augment as A


def batch(n=16, c=1, h=12, w=12, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(A.OPS))
def test_probability_zero_is_identity_and_shapes_hold(name):
    x = batch(c=2)
    assert torch.equal(A.OPS[name](x, 0.0), x)
    assert A.OPS[name](x, 1.0).shape == x.shape


@pytest.mark.parametrize("name", sorted(A.OPS))
def test_same_seed_same_draws(name):
    x = batch()
    a = A.OPS[name](x, 0.7, generator=torch.Generator().manual_seed(3))
    b = A.OPS[name](x, 0.7, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(5)
    c = A.OPS[name](x, 0.7)
    torch.manual_seed(5)
    d = A.OPS[name](x, 0.7)
    assert torch.equal(a, b) and torch.equal(c, d)


def test_hflip_mirrors_the_chosen_samples():
    x = batch(n=400)
    y = A.hflip(x, 0.5, generator=torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(-1)) for i in range(len(x))])
    kept = torch.tensor([torch.equal(y[i], x[i]) for i in range(len(x))])
    assert bool((flipped | kept).all())
    assert 150 < int(flipped.sum()) < 250
    assert torch.equal(A.hflip(x, 1.0), x.flip(-1))


def test_shift_by_moves_pixels_and_repeats_edges():
    x = torch.arange(25.0).view(1, 1, 5, 5)
    y = A.shift_by(x, torch.tensor([[1, -1]]), pad=2)  # one down, one left
    assert torch.equal(y[0, 0, 1:, :4], x[0, 0, :4, 1:])
    assert torch.equal(y[0, 0, 0, :4], x[0, 0, 0, 1:])  # the top row repeats the old edge row
    assert torch.equal(y[0, 0, :, 4], y[0, 0, :, 3])  # the right column repeats the edge column


def test_translate_shifts_within_pad():
    x = batch(n=50)
    y = A.translate(x, 1.0, pad=2, generator=torch.Generator().manual_seed(1))
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(y[i:i + 1], A.shift_by(x[i:i + 1], torch.tensor([[dy, dx]]), 2))]
        assert matches, i


def test_rotate_by_quarter_turn_is_rot90():
    x = batch(c=3)
    quarter = torch.full((len(x),), math.pi / 2)
    assert torch.allclose(A.rotate_by(x, quarter), torch.rot90(x, 1, (2, 3)), atol=1e-5)
    assert torch.allclose(A.rotate_by(x, torch.zeros(len(x))), x, atol=1e-5)


def test_brightness_adds_one_bounded_offset_per_sample():
    x = batch()
    delta = A.brightness(x, 1.0, strength=0.3) - x
    per_sample = delta.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-6)
    assert per_sample.abs().max() <= 0.3 + 1e-6


def test_contrast_keeps_the_mean_and_scales_deviations():
    x = batch()
    y = A.contrast(x, 1.0, strength=0.5)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5)
    ratio = y.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert bool(((ratio >= 0.5 - 1e-5) & (ratio <= 1.5 + 1e-5)).all())


def test_gaussian_blur_of_an_impulse_is_the_kernel():
    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 7, 7] = 1.0
    y = A.gaussian_blur(x, 1.0, sigma=(1.0, 1.0))
    t = torch.arange(-3, 4, dtype=torch.float32)
    g = torch.exp(-t**2 / 2)
    g = g / g.sum()
    assert torch.allclose(y[0, 0, 4:11, 4:11], g[:, None] * g[None, :], atol=1e-6)
    assert torch.allclose(A.gaussian_blur(torch.full((2, 1, 9, 9), 3.0), 1.0), torch.full((2, 1, 9, 9), 3.0))


def test_motion_kernels_are_normalized_lines():
    k = A.motion_kernels(torch.tensor([0.0, math.pi / 2]), 5)
    assert torch.allclose(k.sum(dim=(1, 2)), torch.ones(2))
    assert torch.allclose(k[0, 2], torch.full((5,), 0.2)) and k[0].sum() == pytest.approx(1.0)  # horizontal line
    assert torch.allclose(k[1, :, 2], torch.full((5,), 0.2), atol=1e-6)  # vertical line
    const = torch.full((3, 2, 10, 10), -1.5)
    assert torch.allclose(A.motion_blur(const, 1.0, length=7), const)
    with pytest.raises(UserError):
        A.motion_blur(const, 1.0, length=4)


def test_erase_fills_holes_of_the_given_size():
    x = batch(n=20, h=20, w=20) + 10.0  # no zeros anywhere before erasing
    y = A.erase(x, 1.0, holes=1, size=(0.5, 0.5), value=0.0)
    assert torch.equal((y == 0).sum(dim=(1, 2, 3)), torch.full((20,), 100))  # one 10x10 hole each
    y = A.erase(x, 1.0, holes=3, size=(0.1, 0.3), value="noise")
    erased = (y != x).float().mean(dim=(1, 2, 3))
    assert bool((erased > 0).all()) and bool((erased <= 3 * 0.3 * 0.3 + 1e-6).all())


def test_pipeline_validates_and_takes_2d_images():
    pipe = A.Pipeline([{"op": "hflip", "p": 1.0}, {"op": "translate", "pad": 1, "p": 0.0}])
    x = torch.randn(4, 6, 6)
    assert torch.equal(pipe(x), x.flip(-1))
    with pytest.raises(UserError, match="did you mean 'hflip'"):
        A.Pipeline([{"op": "hflp"}])
    with pytest.raises(UserError, match="unknown parameter 'pad'"):
        A.Pipeline([{"op": "hflip", "pad": 2}])
    with pytest.raises(UserError, match=r"p in \[0, 1\]"):
        A.Pipeline([{"op": "hflip", "p": 2}])
    with pytest.raises(UserError, match="image inputs"):
        pipe(torch.randn(4, 10))
