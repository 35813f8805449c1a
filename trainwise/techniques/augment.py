"""Batch augmentation on the device, as plain tensor code (no torchvision).

Every op takes a batch ``x`` shaped (N, C, H, W) and returns a new batch of the same shape. Each sample
is transformed with probability ``p`` and with its own random parameters, all drawn in one vectorized
call (no per-sample Python loop). Randomness comes from ``generator`` or, when it is None, from torch's
global generator of ``x``'s device; trainwise checkpoints the global generators, so a resumed run draws
the same augmentations as an uninterrupted one.

Inputs are assumed standardized (trainwise normalizes with training statistics), so additive amounts
such as ``brightness``' ``strength`` are in standard deviations. Borders exposed by translation and
rotation repeat the edge pixels (for Fashion-MNIST: background).

``Pipeline`` chains ops from a config list such as ``[{op = "hflip", p = 0.5}, {op = "translate", pad = 2}]``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from trainwise.core import ORDER, Callback, State
from trainwise.errors import UserError, unknown_name
from trainwise.techniques.registry import Technique, register

if TYPE_CHECKING:
    from trainwise.config import Config  # trainwise.config checks augmentation specs with this module


Generator = torch.Generator | None


def _rand(n: int, x: torch.Tensor, generator: Generator, *shape: int) -> torch.Tensor:
    return torch.rand((n, *shape), device=x.device, generator=generator)


def _uniform(lo: float, hi: float, n: int, x: torch.Tensor, generator: Generator, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * _rand(n, x, generator, *shape)


def chosen(x: torch.Tensor, p: float, generator: Generator = None) -> torch.Tensor:
    """A (N,) bool mask: which samples an op with probability ``p`` transforms."""
    return _rand(x.shape[0], x, generator) < p


def _select(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Transformed samples where ``mask``, untouched (bit for bit) elsewhere."""
    return torch.where(mask.view(-1, *([1] * (old.ndim - 1))), new, old)


# ------------------------------------------------------------------------------------------ geometry

def hflip(x: torch.Tensor, p: float = 0.5, *, generator: Generator = None) -> torch.Tensor:
    """Mirror left-right."""
    return _select(chosen(x, p, generator), x.flip(-1), x)


def shift_by(x: torch.Tensor, shifts: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift sample i by ``shifts[i] = (down, right)`` pixels (each in [-pad, pad]), repeating the edge pixels."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    rows = pad - shifts[:, 0:1] + torch.arange(h, device=x.device)  # (N, H): the padded row each output row reads
    cols = pad - shifts[:, 1:2] + torch.arange(w, device=x.device)
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def translate(x: torch.Tensor, p: float = 1.0, *, pad: int = 2, generator: Generator = None) -> torch.Tensor:
    """Random crop with padding: shift each sample by up to ``pad`` pixels in each direction (edge-padded)."""
    mask = chosen(x, p, generator)
    shifts = torch.randint(-pad, pad + 1, (x.shape[0], 2), device=x.device, generator=generator)
    return shift_by(x, shifts * mask[:, None], pad)


def rotate_by(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate sample i counter-clockwise by ``angle[i]`` radians about the centre (bilinear, edge-padded)."""
    _, _, h, w = x.shape
    cos, sin = angle.cos(), angle.sin()
    zero = torch.zeros_like(cos)
    # Output pixel (u, v) reads input (u cos - v sin, u sin + v cos), with v pointing down; in affine_grid's
    # normalized coordinates (both axes in [-1, 1]) the off-diagonal terms carry the aspect ratio.
    theta = torch.stack([torch.stack([cos, -sin * h / w, zero], 1), torch.stack([sin * w / h, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def rotate(x: torch.Tensor, p: float = 1.0, *, degrees: float = 10.0, generator: Generator = None) -> torch.Tensor:
    """Rotate by a uniform angle in [-degrees, degrees] about the centre (bilinear, edge-padded)."""
    mask = chosen(x, p, generator)
    angle = _uniform(-degrees, degrees, x.shape[0], x, generator) * math.pi / 180
    return _select(mask, rotate_by(x, angle), x)


# ------------------------------------------------------------------------------------------ photometric

def brightness(x: torch.Tensor, p: float = 1.0, *, strength: float = 0.2, generator: Generator = None) -> torch.Tensor:
    """Add a uniform offset in [-strength, strength] to every pixel of a sample."""
    offset = _uniform(-strength, strength, x.shape[0], x, generator) * chosen(x, p, generator)
    return x + offset.view(-1, 1, 1, 1).to(x.dtype)


def contrast(x: torch.Tensor, p: float = 1.0, *, strength: float = 0.2, generator: Generator = None) -> torch.Tensor:
    """Scale each sample's deviations from its mean by a factor in [1 - strength, 1 + strength]."""
    mask = chosen(x, p, generator)
    factor = _uniform(1 - strength, 1 + strength, x.shape[0], x, generator).view(-1, 1, 1, 1).to(x.dtype)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return _select(mask, mean + (x - mean) * factor, x)


def _conv_per_sample(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve sample i of ``x`` (all channels) with ``kernels[i]`` (kh, kw): one grouped convolution."""
    n, c, h, w = x.shape
    kh, kw = kernels.shape[1:]
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0)[:, None]  # (N*C, 1, kh, kw)
    padded = F.pad(x.reshape(1, n * c, h, w), (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def gaussian_blur(x: torch.Tensor, p: float = 1.0, *, sigma: tuple[float, float] = (0.3, 1.0),
                  generator: Generator = None) -> torch.Tensor:
    """Blur with a Gaussian whose standard deviation (pixels) is uniform in ``sigma``."""
    n = x.shape[0]
    mask = chosen(x, p, generator)
    s = _uniform(sigma[0], sigma[1], n, x, generator)
    radius = max(1, math.ceil(3 * sigma[1]))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    g = torch.exp(-(t[None] ** 2) / (2 * s[:, None] ** 2))
    g = g / g.sum(1, keepdim=True)  # (N, k), separable
    return _select(mask, _conv_per_sample(x, g[:, :, None] * g[:, None, :]), x)


def motion_kernels(angle: torch.Tensor, length: int) -> torch.Tensor:
    """(N, L, L) kernels: an anti-aliased line of ``length`` pixels through the centre at ``angle`` (radians)."""
    r = (length - 1) / 2
    t = torch.arange(length, device=angle.device, dtype=torch.float32) - r
    v, u = torch.meshgrid(t, t, indexing="ij")  # v: rows (down), u: columns (right)
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    across = (u * sin - v * cos).abs()  # distance from the line
    along = (u * cos + v * sin).abs()
    k = (1 - across).clamp(min=0) * (along <= r + 0.5)
    return k / k.sum(dim=(1, 2), keepdim=True)


def motion_blur(x: torch.Tensor, p: float = 1.0, *, length: int = 5, generator: Generator = None) -> torch.Tensor:
    """Blur along a line of ``length`` pixels (odd) at a uniform random angle, as a moving camera does."""
    if length % 2 == 0 or length < 3:
        raise UserError("motion_blur length must be odd and at least 3", received=length)
    mask = chosen(x, p, generator)
    angle = _uniform(0.0, math.pi, x.shape[0], x, generator)
    return _select(mask, _conv_per_sample(x, motion_kernels(angle, length)), x)


# ------------------------------------------------------------------------------------------ occlusion

def erase(x: torch.Tensor, p: float = 0.5, *, holes: int = 1, size: tuple[float, float] = (0.1, 0.4),
          value: float | str = 0.0, generator: Generator = None) -> torch.Tensor:
    """Random erasing / coarse dropout (Cutout): ``holes`` rectangles per chosen sample.

    Each side of a hole is a uniform fraction in ``size`` of the image side; holes may overlap and are
    clipped at the border only through their position (they always lie inside the image). They are
    filled with ``value`` (0 is the mean of standardized data) or with Gaussian noise (``"noise"``).
    """
    n, c, h, w = x.shape
    mask = chosen(x, p, generator)
    sides = _uniform(size[0], size[1], n, x, generator, holes, 2)
    hh = (sides[..., 0] * h).round().clamp(1, h)
    ww = (sides[..., 1] * w).round().clamp(1, w)
    top = (_rand(n, x, generator, holes) * (h - hh + 1)).floor()
    left = (_rand(n, x, generator, holes) * (w - ww + 1)).floor()
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top[..., None]) & (rows < (top + hh)[..., None])  # (N, holes, H)
    in_cols = (cols >= left[..., None]) & (cols < (left + ww)[..., None])  # (N, holes, W)
    region = (in_rows[..., :, None] & in_cols[..., None, :]).any(1) & mask[:, None, None]  # (N, H, W)
    if value == "noise":
        fill = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    elif isinstance(value, (int, float)):
        fill = torch.full_like(x, float(value))
    else:
        raise UserError("bad erase value", expected="a number or 'noise'", received=value)
    return torch.where(region[:, None], fill, x)


OPS: dict[str, Callable[..., torch.Tensor]] = {
    "hflip": hflip,
    "translate": translate,
    "rotate": rotate,
    "brightness": brightness,
    "contrast": contrast,
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "erase": erase,
}


# ------------------------------------------------------------------------------------------ pipelines

def check_op_spec(spec: dict[str, Any], where: str = "augment") -> tuple[Callable[..., torch.Tensor], float, dict[str, Any]]:
    """Validate one ``{op = NAME, p = P, **params}`` entry; return (function, p, params)."""
    if not isinstance(spec, dict) or "op" not in spec:
        raise UserError(f"bad entry in {where}", expected='a table like {op = "hflip", p = 0.5}', received=spec)
    name = spec["op"]
    if name not in OPS:
        raise unknown_name("augmentation op", name, OPS, key=where)
    fn = OPS[name]
    p = spec.get("p", inspect.signature(fn).parameters["p"].default)
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise UserError(f"bad probability for {name} in {where}", expected="p in [0, 1]", received=p)
    params = {k: v for k, v in spec.items() if k not in ("op", "p")}
    allowed = [k for k, v in inspect.signature(fn).parameters.items() if v.kind is v.KEYWORD_ONLY and k != "generator"]
    for key in params:
        if key not in allowed:
            raise UserError(f"unknown parameter {key!r} for augmentation op {name!r} in {where}",
                            expected=f"one of p, {', '.join(allowed)}" if allowed else "only p", fix=f"remove {key!r}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    return fn, float(p), params


class Pipeline:
    """Ops applied in order to image batches (N, C, H, W) or (N, H, W)."""

    def __init__(self, specs: list[dict[str, Any]], where: str = "augment"):
        self.steps = [check_op_spec(s, where) for s in specs]

    def __len__(self) -> int:
        return len(self.steps)

    def __call__(self, x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
        if x.ndim not in (3, 4):
            raise UserError("augmentation needs image inputs", expected="batches shaped (N, C, H, W) or (N, H, W)",
                            received=f"a batch shaped {tuple(x.shape)}", fix="remove the augment pipeline for vector data")
        squeeze = x.ndim == 3
        if squeeze:
            x = x[:, None]
        for fn, p, params in self.steps:
            x = fn(x, p, generator=generator, **params)
        return x[:, 0] if squeeze else x


# ------------------------------------------------------------ the callback

class Augmentation(Callback):
    """Augments each training batch on the device at BATCH_START (trainwise.techniques.augment).

    Only the first input (the image) is augmented; an extra feature vector passes through. The pipeline is
    skipped while ``state.augment`` is False (a progressive-resizing phase without augmentation).
    """

    order = ORDER["augment"]

    def __init__(self, specs: list[dict[str, Any]]):
        self.pipeline = Pipeline(specs, where="augment.train")

    def on_batch_start(self, state: State) -> None:
        if state.augment and len(self.pipeline):
            state.inputs = (self.pipeline(state.inputs[0]), *state.inputs[1:])


def eval_transforms(cfg: Config) -> list[Callable]:
    """Input transforms for evaluation: the test augmentation pipeline, with a fixed seed per call."""
    if not cfg.augment.test:
        return []
    pipeline = Pipeline(cfg.augment.test, where="augment.test")

    def test_pipeline(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        # The same corruption draws for each batch position in every evaluation, without touching the training RNG.
        generator = torch.Generator(inputs[0].device).manual_seed(cfg.augment.test_seed)
        return (pipeline(inputs[0], generator), *inputs[1:])

    return [test_pipeline]


register(Technique(
    "augment", enabled=lambda cfg: bool(cfg.augment.train or cfg.augment.test),
    build=lambda cfg: [Augmentation(cfg.augment.train)] if cfg.augment.train else [],
    eval_transforms=eval_transforms,
    example={"augment.train": [{"op": "hflip", "p": 0.5}, {"op": "translate", "pad": 1}, {"op": "erase", "p": 0.5}],
             "augment.test": [{"op": "gaussian_blur", "p": 0.5}]},
    docs="Augmentation on the device"))
