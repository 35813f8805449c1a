"""Which library decodes an image folder's files: Pillow always, OpenCV for PNG files when it is installed.

A PNG file of 28 x 28 pixels costs Pillow about 45 us to open and decode on a small CPU and OpenCV about 23
us (the file read itself is 9 us), so OpenCV roughly doubles what a DataLoader worker can feed; on the
GPU machine eight workers read 65,000 Fashion-MNIST files a second through Pillow and 173,000 through
OpenCV (docs/benchmarks.md). Both give the same pixels: PNG is lossless and OpenCV is asked for the file
as stored (``IMREAD_UNCHANGED``). Whenever the stored image does not already have the batch's channels --
another number of channels, 16 bits, an alpha channel -- the file goes to Pillow, and another size than the
batch's is resized by Pillow from OpenCV's pixels, so conversions and resizing always follow Pillow's rules
and a run's inputs do not depend on which library is installed.
JPEG files stay with Pillow: colour conversions of CMYK and YCCK files differ between the libraries.
"""

from __future__ import annotations

import functools

import numpy as np

from trainwise.errors import UserError

DECODERS = ("auto", "pillow", "opencv")


def opencv_available() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def resolve(name: str) -> str:
    """``auto`` -> ``opencv`` when OpenCV imports, else ``pillow``; ``opencv`` without it is a user error."""
    if name == "auto":
        return "opencv" if opencv_available() else "pillow"
    if name == "opencv" and not opencv_available():
        raise UserError("data.decoder = 'opencv' but OpenCV is not installed", expected="the cv2 module",
                        received="no module named cv2",
                        fix="pip install opencv-python-headless (or trainwise[opencv]), or set data.decoder = 'auto'")
    return name


@functools.cache
def _cv2():
    import cv2
    from cv2.utils import logging

    # A file OpenCV cannot read goes to Pillow, which names it in the error the user sees (or counts it under
    # data.skip_corrupt); OpenCV's own warnings on stderr would only repeat that from every worker.
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    return cv2


def png_as_stored(path: str, channels: int) -> np.ndarray | None:
    """A PNG file's uint8 pixels through OpenCV, (H, W) or (H, W, 3) RGB, when the stored image already has
    ``channels`` 8-bit channels; None otherwise (Pillow converts, or reports the file as corrupt in its own
    words)."""
    cv2 = _cv2()
    pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint8:
        return None
    if channels == 1:
        return pixels if pixels.ndim == 2 else None
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        return None
    return np.ascontiguousarray(pixels[..., ::-1])  # OpenCV keeps BGR order
