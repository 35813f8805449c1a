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

def erase(x: torch.Tensor, p: float = 0.5, *, holes: int | tuple[int, int] = 1, size: tuple[float, float] = (0.1, 0.4),
          value: float | str = 0.0, generator: Generator = None) -> torch.Tensor:
    """Random erasing / coarse dropout (Cutout): ``holes`` rectangles per chosen sample, or a number drawn
    uniformly from ``holes = (lo, hi)`` (inclusive) per sample, as CoarseDropout's min/max holes.

    Each side of a hole is a uniform fraction in ``size`` of the image side; holes may overlap and are
    clipped at the border only through their position (they always lie inside the image). They are
    filled with ``value`` (0 is the mean of standardized data) or with Gaussian noise (``"noise"``).
    """
    n, c, h, w = x.shape
    mask = chosen(x, p, generator)
    lo, hi = (holes, holes) if isinstance(holes, int) else holes
    count = torch.randint(lo, hi + 1, (n,), device=x.device, generator=generator) if hi > lo else None
    holes = hi
    sides = _uniform(size[0], size[1], n, x, generator, holes, 2)
    hh = (sides[..., 0] * h).round().clamp(1, h)
    ww = (sides[..., 1] * w).round().clamp(1, w)
    top = (_rand(n, x, generator, holes) * (h - hh + 1)).floor()
    left = (_rand(n, x, generator, holes) * (w - ww + 1)).floor()
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top[..., None]) & (rows < (top + hh)[..., None])  # (N, holes, H)
    in_cols = (cols >= left[..., None]) & (cols < (left + ww)[..., None])  # (N, holes, W)
    used = in_rows[..., :, None] & in_cols[..., None, :]  # (N, holes, H, W)
    if count is not None:  # sample i keeps its first count[i] holes
        used = used & (torch.arange(holes, device=x.device)[None] < count[:, None])[..., None, None]
    region = used.any(1) & mask[:, None, None]  # (N, H, W)
    if value == "noise":
        fill = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    elif isinstance(value, (int, float)):
        fill = torch.full_like(x, float(value))
    else:
        raise UserError("bad erase value", expected="a number or 'noise'", received=value)
    return torch.where(region[:, None], fill, x)


# ------------------------------------------------------------------------------------------ seeds' recipes

def random_resized_crop(x: torch.Tensor, p: float = 1.0, *, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), generator: Generator = None) -> torch.Tensor:
    """Crop a box of a uniform share ``scale`` of the area and a log-uniform aspect ``ratio`` (width/height),
    placed uniformly inside the image, and resize it back to the image size (bilinear), as
    torchvision's / albumentations' RandomResizedCrop do after decoding."""
    n = x.shape[0]
    mask = chosen(x, p, generator)
    area = _uniform(scale[0], scale[1], n, x, generator)
    aspect = torch.exp(_uniform(math.log(ratio[0]), math.log(ratio[1]), n, x, generator))
    bw = torch.sqrt(area * aspect).clamp(max=1.0)  # box sides as fractions of the image sides
    bh = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (2 * _rand(n, x, generator) - 1) * (1 - bw)  # box centre in affine_grid's [-1, 1] coordinates
    cy = (2 * _rand(n, x, generator) - 1) * (1 - bh)
    zero = torch.zeros_like(bw)
    theta = torch.stack([torch.stack([bw, zero, cx], 1), torch.stack([zero, bh, cy], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return _select(mask, F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False), x)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> HSV, hue in [0, 1)."""
    r, g, b = x.unbind(1)
    value, arg = x.max(1)
    low = x.min(1).values
    delta = value - low
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(arg == 0, ((g - b) / safe) % 6, torch.where(arg == 1, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    sat = torch.where(value > 0, delta / torch.where(value > 0, value, torch.ones_like(value)), torch.zeros_like(value))
    return torch.stack([hue % 1.0, sat, value], 1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], 1)  # channel offsets r, g, b
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def hsv(x: torch.Tensor, p: float = 1.0, *, hue: float = 0.05, saturation: float = 0.3, value: float = 0.3,
        generator: Generator = None) -> torch.Tensor:
    """Hue/saturation/value jitter of RGB images in [0, 1] (before normalization): hue shifted by a uniform
    amount in [-hue, hue] of the colour circle, saturation and value scaled by factors in [1 - s, 1 + s].
    Images with other than 3 channels have no hue or saturation: their values are scaled only."""
    n = x.shape[0]
    mask = chosen(x, p, generator)
    shift = _uniform(-hue, hue, n, x, generator).view(-1, 1, 1)
    sat = _uniform(1 - saturation, 1 + saturation, n, x, generator).view(-1, 1, 1)
    val = _uniform(1 - value, 1 + value, n, x, generator).view(-1, 1, 1)
    if x.shape[1] != 3:
        return _select(mask, x * val[:, None].to(x.dtype), x)
    h, s, v = rgb_to_hsv(x.clamp(0, 1).float()).unbind(1)
    out = hsv_to_rgb(torch.stack([(h + shift) % 1.0, (s * sat).clamp(0, 1), (v * val).clamp(0, 1)], 1)).to(x.dtype)
    return _select(mask, out, x)


IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def normalize(x: torch.Tensor, p: float = 1.0, *, mean: tuple[float, ...] | str = (0.0,), std: tuple[float, ...] | str = (1.0,),
              generator: Generator = None) -> torch.Tensor:
    """(x - mean) / std per channel with given values: one per channel, one for all, or ``"imagenet"``.

    Preprocessing rather than augmentation (keep p = 1): put it in both augment.train and augment.test,
    after the pixel-space ops, with data.normalize = false, as albumentations pipelines end with Normalize."""
    mean = IMAGENET["mean"] if mean == "imagenet" else mean
    std = IMAGENET["std"] if std == "imagenet" else std
    if len(mean) not in (1, x.shape[1]) or len(std) not in (1, x.shape[1]):
        raise UserError("normalize needs one mean and one std per channel", expected=f"{x.shape[1]} values each (or one for all)",
                        received=f"{len(mean)} means, {len(std)} stds")
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    sd = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return _select(chosen(x, p, generator), (x - m) / sd, x)


def one_of(x: torch.Tensor, p: float = 1.0, *, ops: tuple = (), generator: Generator = None) -> torch.Tensor:
    """Apply one op of ``ops`` per chosen sample, picked with weights proportional to each op's own ``p``
    (albumentations' OneOf), e.g. ``{op = "one_of", p = 0.3, ops = [{op = "gaussian_blur"}, {op = "motion_blur"}]}``."""
    steps = [check_op_spec(dict(spec), "one_of") for spec in ops]
    if not steps:
        return x
    weights = torch.tensor([step_p for _, step_p, _ in steps], device=x.device, dtype=torch.float32)
    mask = chosen(x, p, generator)
    cumulative = (weights / weights.sum()).cumsum(0)
    pick = torch.searchsorted(cumulative, _rand(x.shape[0], x, generator).contiguous()).clamp(max=len(steps) - 1)
    out = x
    for k, (fn, _, params) in enumerate(steps):
        out = _select(mask & (pick == k), fn(x, 1.0, generator=generator, **params), out)
    return out


OPS: dict[str, Callable[..., torch.Tensor]] = {
    "hflip": hflip,
    "translate": translate,
    "rotate": rotate,
    "brightness": brightness,
    "contrast": contrast,
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "erase": erase,
    "random_resized_crop": random_resized_crop,
    "hsv": hsv,
    "one_of": one_of,
    "normalize": normalize,
}


def _check_params(name: str, params: dict[str, Any], where: str) -> None:
    """Parameter values an op cannot use, refused when the config is read (never mid-run)."""
    def bad(key: str, expected: str) -> UserError:
        return UserError(f"bad {key} for augmentation op {name!r} in {where}", expected=expected, received=params[key])

    def pair(key: str, lo: float, hi: float, strict_lo: bool = False) -> None:
        v = params.get(key)
        if v is None:
            return
        ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(a, (int, float)) for a in v) and v[0] <= v[1]
        ok = ok and (v[0] > lo if strict_lo else v[0] >= lo) and v[1] <= hi
        if not ok:
            raise bad(key, f"[low, high] with {lo} {'<' if strict_lo else '<='} low <= high <= {hi}")

    def number(key: str, lo: float, hi: float) -> None:
        v = params.get(key)
        if v is not None and not (isinstance(v, (int, float)) and lo <= v <= hi):
            raise bad(key, f"a number in [{lo}, {hi}]")

    if name == "random_resized_crop":
        pair("scale", 0.0, 1.0, strict_lo=True)
        pair("ratio", 0.0, math.inf, strict_lo=True)
    elif name == "hsv":
        number("hue", 0.0, 0.5)
        number("saturation", 0.0, 1.0)
        number("value", 0.0, 1.0)
    elif name == "erase":
        pair("size", 0.0, 1.0, strict_lo=True)
        holes = params.get("holes")
        if holes is not None and not ((isinstance(holes, int) and holes >= 1) or (isinstance(holes, (list, tuple)) and len(holes) == 2
                                      and all(isinstance(h, int) for h in holes) and 1 <= holes[0] <= holes[1])):
            raise bad("holes", "a count >= 1 or a range [low, high] of counts, 1 <= low <= high")
    elif name == "gaussian_blur":
        pair("sigma", 0.0, math.inf, strict_lo=True)
    elif name == "motion_blur":
        length = params.get("length")
        if length is not None and not (isinstance(length, int) and length >= 3 and length % 2):
            raise bad("length", "an odd number of pixels >= 3")
    elif name == "normalize":
        for key in ("mean", "std"):
            v = params.get(key)
            if v is not None and v != "imagenet" and not (isinstance(v, (list, tuple)) and v and all(isinstance(a, (int, float)) for a in v)):
                raise bad(key, 'a list of numbers, one per channel (or "imagenet")')
        std = IMAGENET["std"] if params.get("std") == "imagenet" else params.get("std")
        mean = IMAGENET["mean"] if params.get("mean") == "imagenet" else params.get("mean")
        if std is not None and min(std) <= 0:
            raise bad("std", "standard deviations > 0")
        if mean is not None and std is not None and len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise bad("std", f"as many values as mean ({len(mean)})")
    elif name == "one_of":
        ops = params.get("ops")
        if not isinstance(ops, (list, tuple)) or not ops:
            raise UserError(f"augmentation op 'one_of' in {where} needs ops", expected='ops = [{op = "gaussian_blur"}, {op = "motion_blur"}]',
                            received=ops)
        for spec in ops:
            check_op_spec(dict(spec) if isinstance(spec, dict) else spec, f"{where} one_of")


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
    _check_params(name, params, where)
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    return fn, float(p), params  # one_of's ops stay tables (checked above, converted when it runs)


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
