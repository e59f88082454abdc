"""Decoding uploaded bytes into pixels, refusing what is unreadable or too large.

A phone photo is never decoded at full size: the pipeline works at
``InkConfig.work_side`` (320 px on the longer side), so a JPEG is decoded at the smallest
DCT scale (1/2, 1/4 or 1/8) that keeps its longer side at least :data:`MIN_SIDE`, and any
other large image is box-reduced to that size straight after decoding, before it is
converted or copied. A 12-megapixel photo then comes out about 1000x750.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from .ink import DEFAULT_INK

# Refuse decompression bombs before decoding: 40 megapixels is a 7300x5500 photo.
MAX_PIXELS = 40_000_000
# Bytes read at most: the upload limit in .streamlit/config.toml (maxUploadSize) is the same.
MAX_BYTES = 20 * 1024 * 1024
# Decoded images keep their longer side at least this long: twice the pipeline's working
# side, so its area-averaged shrink to that side still has 2+ source pixels per pixel (as
# smooth as from the full photo), and the Upload page's stages and thumbnails stay sharp.
MIN_SIDE = 2 * DEFAULT_INK.work_side

# EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose).
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
           4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
           6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}
ORIENTATION = 0x0112
# Modes Image.reduce averages correctly (palettes and 1-bit images are converted first).
REDUCIBLE = {"L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F"}
# Greyscale with more than 8 bits: scaled from the image's own range to 0-255.
HIGH_BIT_DEPTH = {"I", "F"}
# The only formats opened (what the app promises). Pillow's other plugins never see the
# bytes: no EPS (Ghostscript), no PSD, no ICO.
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
# What an opened image may say it is: many phones' JPEGs open as MPO (JPEG's own opener).
OPENED_AS = (*FORMATS, "MPO")


class ImageReadError(ValueError):
    """The bytes are not a readable image, or the image is too large."""


def _too_large(pixels: int, max_pixels: int, size: str = "") -> ImageReadError:
    return ImageReadError(f"image is {size + ', ' if size else ''}{pixels / 1e6:.0f} megapixels; "
                          f"the limit is {max_pixels / 1e6:.0f} megapixels")


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """``Image.open``, with Pillow's own decompression-bomb check (over
    ``Image.MAX_IMAGE_PIXELS``, far above ``max_pixels``) answered with the size limit."""
    try:
        with warnings.catch_warnings():
            # Pillow warns over its limit; ours is lower, and checked next. (The filter is
            # process-wide while Pillow reads the header: another thread's warnings of this
            # one category could go unseen for that long.)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:  # over twice Pillow's limit
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise _too_large(pixels, max_pixels) from None
    if img.format not in OPENED_AS:   # checked again after opening, before any decoding
        img.close()
        raise ImageReadError(f"a {img.format} file; PNG, JPEG, WebP, BMP, TIFF or GIF please")
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise _too_large(width * height, max_pixels, f"{width}x{height} pixels")
    return img


def _reducible(img: Image.Image, alpha: bool) -> Image.Image:
    """``img`` in a mode :meth:`Image.reduce` averages correctly, nothing lost: palettes
    and transparency colours become RGB(A), 1-bit becomes grey, 16-bit becomes 32-bit."""
    if img.mode.startswith("I;16"):
        return img.convert("I")
    if img.mode in REDUCIBLE and "transparency" not in img.info:
        return img
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGBA" if alpha else "RGB")


def _stretch(img: Image.Image) -> Image.Image:
    """A high-bit-depth grey image (mode I or F) as 8-bit grey, its own range (finite
    values, darkest to brightest) scaled to 0-255; a flat image keeps its level, clipped."""
    values = np.asarray(img, np.float32)
    finite = np.isfinite(values)
    lo, hi = (float(values[finite].min()), float(values[finite].max())) if finite.any() \
        else (0.0, 0.0)
    if hi > lo:
        values = (np.where(finite, values, lo) - lo) * (255 / (hi - lo))
    else:
        values = np.full(values.shape, np.clip(lo, 0, 255), np.float32)
    return Image.fromarray(np.rint(values).astype(np.uint8))


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES,
                 min_side: int = MIN_SIDE) -> np.ndarray:
    """Decode PNG/JPEG/WebP/BMP/TIFF/GIF bytes into ``(H, W, 3|4) uint8`` RGB(A).

    Applies EXIF rotation, keeps transparency, takes a GIF's first frame, scales 16-bit,
    32-bit and float greyscale from their own range. An image whose longer side is over
    twice ``min_side`` comes out reduced, keeping that side at least ``min_side`` (JPEGs
    are decoded at that size, see the module's docstring). Raises :class:`ImageReadError`
    for unreadable data, or images over ``max_bytes``/``max_pixels``.
    """
    if len(data) > max_bytes:
        raise ImageReadError(f"file is {len(data) / 2**20:.1f} MB; the limit is "
                             f"{max_bytes / 2**20:.0f} MB")
    try:
        with _open(data, max_pixels) as img:
            img.seek(0)
            orientation = img.getexif().get(ORIENTATION, 1)
            alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            longer = max(img.size)
            if longer > 2 * min_side:
                # JPEG only (a no-op otherwise): the smallest DCT scale with both sides at
                # least the requested ones.
                img.draft("RGB", (-(-img.width * min_side // longer),
                                  -(-img.height * min_side // longer)))
            pic = _reducible(img, alpha)
            factor = max(pic.size) // min_side
            if factor >= 2:
                pic = pic.reduce(factor)
            if pic.mode in HIGH_BIT_DEPTH:
                pic = _stretch(pic)
            pic = pic.convert("RGBA" if alpha else "RGB")
            if orientation in UPRIGHT:
                pic = pic.transpose(UPRIGHT[orientation])
            return np.asarray(pic)
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageReadError("not a readable image (unknown or corrupt format)") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageReadError(f"not a readable image ({type(exc).__name__}: {exc})") from exc
