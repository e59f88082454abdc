"""Decoding uploaded bytes into pixels, refusing what is unreadable or too large."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Refuse decompression bombs before decoding: 40 megapixels is a 7300x5500 photo.
MAX_PIXELS = 40_000_000
# Bytes read at most: the upload limit in .streamlit/config.toml (maxUploadSize) is the same.
MAX_BYTES = 20 * 1024 * 1024


class ImageReadError(ValueError):
    """The bytes are not a readable image, or the image is too large."""


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS,
                 max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Decode PNG/JPEG/WebP/BMP/TIFF/GIF bytes into ``(H, W, 3|4) uint8`` RGB(A).

    Applies EXIF rotation, keeps transparency, takes a GIF's first frame. Raises
    :class:`ImageReadError` for unreadable data, or images over ``max_bytes``/``max_pixels``.
    """
    if len(data) > max_bytes:
        raise ImageReadError(f"file is {len(data) / 2**20:.1f} MB; the limit is "
                             f"{max_bytes / 2**20:.0f} MB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageReadError(f"image is {width}x{height} pixels; the limit is "
                                     f"{max_pixels / 1e6:.0f} megapixels")
            img.seek(0)
            img = ImageOps.exif_transpose(img)
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            img = img.convert("RGBA" if has_alpha else "RGB")
            return np.asarray(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageReadError("not a readable image (unknown or corrupt format)") from exc
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError, EOFError) as exc:
        raise ImageReadError(f"not a readable image ({type(exc).__name__}: {exc})") from exc
