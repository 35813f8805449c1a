"""Image folders decoded through OpenCV (data.decoder): the same pixels as Pillow, on real digits files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import trainwise
from trainwise.config import Config, DataConfig
from trainwise.data import decoders, prepare_data
from trainwise.data.folder import decode_pixels
from trainwise.errors import UserError

cv2 = pytest.importorskip("cv2", reason="OpenCV (opencv-python-headless) is not installed")

TRAIN = {"train.epochs": 4, "optim.lr": 3e-3, "train.progress": "none", "train.threads": 1, "train.report": False,
         "doctor.live": False, "monitors.enabled": False}


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.round(d.images * 255 / 16).astype(np.uint8), d.target


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Digits written as PNG files in the layouts folders hold: 8-bit gray, RGB, RGBA, palette, 16-bit gray."""
    root = tmp_path_factory.mktemp("png")
    images, _ = _digits()
    rgb = np.stack([images, 255 - images, images // 2], axis=-1)
    files = {}
    for i in range(40):
        files.setdefault("L", []).append(root / f"gray{i}.png")
        Image.fromarray(images[i], mode="L").save(files["L"][-1])
        files.setdefault("RGB", []).append(root / f"rgb{i}.png")
        Image.fromarray(rgb[i], mode="RGB").save(files["RGB"][-1])
        files.setdefault("RGBA", []).append(root / f"rgba{i}.png")
        Image.fromarray(np.dstack([rgb[i], images[i]]), mode="RGBA").save(files["RGBA"][-1])
        files.setdefault("P", []).append(root / f"palette{i}.png")
        Image.fromarray(rgb[i], mode="RGB").quantize(16).save(files["P"][-1])
        files.setdefault("I;16", []).append(root / f"deep{i}.png")
        Image.fromarray(images[i].astype(np.uint16) * 257).save(files["I;16"][-1])
    return files


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [(8, 8), (16, 12), (4, 4)])
def test_opencv_gives_pillows_pixels_for_every_layout_size_and_channel_count(stored, mode, channels, size):
    for path in stored[mode]:
        pillow = decode_pixels(str(path), size, channels, "pillow")
        opencv = decode_pixels(str(path), size, channels, "opencv")
        assert opencv.dtype == np.uint8 and opencv.shape == pillow.shape
        np.testing.assert_array_equal(opencv, pillow, err_msg=f"{path.name} {size} {channels}")


def test_opencv_reads_the_files_stored_with_the_channels_needed_and_leaves_the_rest_to_pillow(stored):
    assert decoders.png_as_stored(str(stored["L"][0]), 1).shape == (8, 8)
    assert decoders.png_as_stored(str(stored["RGB"][0]), 3).shape == (8, 8, 3)
    assert decoders.png_as_stored(str(stored["P"][0]), 3) is not None  # palette expanded as Pillow does
    for path, channels in [(stored["L"][0], 3), (stored["RGB"][0], 1), (stored["RGBA"][0], 3), (stored["I;16"][0], 1)]:
        assert decoders.png_as_stored(str(path), channels) is None, (path.name, channels)


def test_a_run_through_either_decoder_is_the_same_run(tmp_path):
    images, target = _digits()
    for i, (img, y) in enumerate(zip(images, target)):
        (tmp_path / f"digit{y}").mkdir(exist_ok=True)
        Image.fromarray(img, mode="L").save(tmp_path / f"digit{y}" / f"{i:04d}.png")
    runs = {d: trainwise.fit(Config().replace({**TRAIN, "data.name": "folder", "data.path": str(tmp_path), "data.num_workers": 2,
                                                 "data.decoder": d})) for d in ("pillow", "opencv")}
    assert runs["opencv"].summary["test"]["acc"] > 0.85
    assert [r["train_loss"] for r in runs["opencv"].history.records] == [r["train_loss"] for r in runs["pillow"].history.records]
    assert runs["opencv"].summary["test"] == runs["pillow"].summary["test"]


def test_auto_takes_opencv_when_installed_and_opencv_without_it_is_a_user_error(monkeypatch, tmp_path):
    assert decoders.resolve("auto") == "opencv" and decoders.resolve("pillow") == "pillow"
    monkeypatch.setattr(decoders, "opencv_available", lambda: False)
    assert decoders.resolve("auto") == "pillow"
    with pytest.raises(UserError, match="OpenCV is not installed.*pip install opencv-python-headless"):
        decoders.resolve("opencv")
    with pytest.raises(Exception, match="decoder"):
        DataConfig(name="folder", path=str(tmp_path), decoder="libpng")
