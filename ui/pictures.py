"""Pictures for display: crisp upscales, colour maps, grids and frames, each one image.

Images arrive as ``(h, w) float32 in [0, 1]`` white-on-black (mnist_core's convention) or
``uint8``; nothing here changes what a model sees, it only draws it. Showing many small
pictures as one ``st.image`` keeps a page to one element instead of dozens of columns.
"""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from mnist_core.preprocess import centre_of_mass

from . import memo

MARK = (239, 68, 68)         # centre-of-mass dot
OUTLINE = (40, 40, 40)       # a digit's outline drawn over a weight or saliency map
OUTLINE_LEVEL = 0.35         # pixels brighter than this are the digit, for its outline
PAPER = 255                  # margins and grid gaps: the page's white
THIN = 8                     # a thumbnail's shorter side is at least side // THIN (padded)


def to_uint8(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def rgb(img: np.ndarray) -> np.ndarray:
    """Grey (float in [0, 1] or uint8) or RGB -> ``(h, w, 3) uint8``."""
    g = to_uint8(img)
    return g if g.ndim == 3 else np.repeat(g[..., None], 3, axis=2)


def upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale: each pixel becomes a crisp ``scale`` x ``scale`` block."""
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def pixels(img: np.ndarray, scale: int, grid: bool = False) -> np.ndarray:
    """A model input upscaled so each pixel is visible, with a faint pixel grid if asked."""
    out = upscale(to_uint8(img), scale)
    if grid and scale >= 4:
        out = out.copy()
        out[::scale] = (out[::scale] * 0.8 + 28).astype(np.uint8)
        out[:, ::scale] = (out[:, ::scale] * 0.8 + 28).astype(np.uint8)
    return out


def digit_picture(image: np.ndarray, scale: int = 6) -> np.ndarray:
    """A 28x28 model input as crisp grey RGB pixels."""
    return upscale(rgb(image), scale)


def square(img: np.ndarray, side: int) -> np.ndarray:
    """Pad to a square on black, then resize to ``side`` (smooth), for variable-size stages."""
    img = to_uint8(img)
    h, w = img.shape[:2]
    n = max(h, w, 1)
    canvas = np.zeros((n, n, *img.shape[2:]), np.uint8)
    y, x = (n - h) // 2, (n - w) // 2
    canvas[y:y + h, x:x + w] = img
    return np.asarray(Image.fromarray(canvas).resize((side, side), Image.Resampling.BOX))


def mark_centre(img: np.ndarray, scale: int) -> np.ndarray:
    """Upscaled RGB copy of a 28x28 image with its centre of mass as a red dot."""
    cy, cx = centre_of_mass(np.asarray(img, np.float32))
    out = upscale(rgb(img), scale)
    r = max(2, scale // 2)
    y, x = int(round(cy * scale + scale / 2)), int(round(cx * scale + scale / 2))
    out[max(0, y - r):y + r, max(0, x - r):x + r] = MARK
    return out


def framed(img: np.ndarray, margin: int = 6) -> np.ndarray:
    """``(h + 2 margin, w + 2 margin, 4) uint8`` RGBA: the image with a transparent margin,
    so images shown in a row do not touch, on a light or a dark page alike."""
    opaque = np.dstack([rgb(img), np.full(np.shape(img)[:2], 255, np.uint8)])
    return np.pad(opaque, ((margin, margin), (margin, margin), (0, 0)), constant_values=0)


def thumbnail(image: np.ndarray, side: int = 220) -> np.ndarray:
    """A decoded upload shrunk for display (never ship a 40-megapixel photo to the browser),
    its longer side at most ``side``. A strip (a 5000x10 upload) is centred on paper so its
    shorter side is at least ``side // THIN``: ``st.image`` shrinks a picture wider than
    its ``width`` itself, and a 1-pixel side would round to none."""
    img = Image.fromarray(np.asarray(image))
    scale = min(1.0, side / max(img.size))
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    if size != img.size:
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = np.asarray(img)
    h, w = out.shape[:2]
    least = max(1, side // THIN)
    dy, dx = max(0, least - h), max(0, least - w)
    if dy or dx:
        pad = ((dy // 2, dy - dy // 2), (dx // 2, dx - dx // 2)) + ((0, 0),) * (out.ndim - 2)
        out = np.pad(out, pad, constant_values=PAPER)
    return out


_PNGS: OrderedDict[bytes, str] = OrderedDict()   # picture digest -> its data URL, newest last
_PNGS_LOCK = threading.Lock()
PNG_MEMORY = 256   # pictures remembered (a few kB each): a page's worth for many sessions


def png_url(img: np.ndarray) -> str:
    """``img`` (``uint8`` grey, RGB or RGBA) as a PNG ``data:`` URL for ``st.image``.

    The picture travels inside the page's update, so the browser shows it with the rest
    instead of fetching each picture from the server afterwards (the Draw page's eleven
    pictures were eleven requests after every stroke), and the server neither re-encodes
    nor stores it. Fast zlib (level 1: a third of the time of ``st.image``'s own level-6
    encoding, on pictures of a few kB), and remembered by content: a rerun that shows the
    same picture again (the brush moved, a button, a slider that left this picture alone)
    does not encode it again. ``st.image`` would send an RGB array as JPEG; PNG keeps the
    pixels crisp. For small pictures: a URL is about 4/3 of the PNG's bytes."""
    img = np.ascontiguousarray(img)
    key = memo.digest(img)
    with _PNGS_LOCK:
        done = _PNGS.get(key)
        if done is not None:
            _PNGS.move_to_end(key)
            return done
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    done = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    with _PNGS_LOCK:
        _PNGS[key] = done
        while len(_PNGS) > PNG_MEMORY:
            _PNGS.popitem(last=False)
    return done


def data_url(img: np.ndarray, scale: int = 2) -> str:
    """A small PNG as a ``data:`` URL, for image columns in dataframes."""
    buf = io.BytesIO()
    Image.fromarray(pixels(img, scale)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------------------
# Colour maps
# ---------------------------------------------------------------------------------------

def _lut(anchors: Sequence[Sequence[int]]) -> np.ndarray:
    anchors = np.asarray(anchors, np.float64)
    pos = np.linspace(0, 1, len(anchors))
    t = np.linspace(0, 1, 256)
    return np.stack([np.interp(t, pos, anchors[:, c]) for c in range(3)], 1).round().astype(
        np.uint8)


# Blue = negative, white = zero, red = positive (ColorBrewer RdBu, reversed).
DIVERGING = _lut([(33, 102, 172), (103, 169, 207), (209, 229, 240), (247, 247, 247),
                  (253, 219, 199), (239, 138, 98), (178, 24, 43)])
# Black = silent, through purple and orange to pale yellow = strongest (magma-like).
SEQUENTIAL = _lut([(0, 0, 4), (80, 18, 123), (183, 55, 121), (252, 137, 97), (252, 253, 191)])


def _limit(values: np.ndarray, percentile: float = 99.5) -> float:
    """A robust maximum magnitude: a high percentile, so one outlier does not wash out
    the rest (never 0)."""
    a = np.abs(np.asarray(values, np.float64))
    lim = float(np.percentile(a, percentile)) if a.size else 0.0
    return lim if lim > 1e-12 else (float(a.max()) if a.size and a.max() > 0 else 1.0)


def diverging(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Signed values -> ``uint8`` RGB: blue below zero, white at zero, red above."""
    v = np.asarray(values, np.float64)
    lim = limit if limit else _limit(v)
    idx = np.clip((v / lim + 1) * 127.5, 0, 255).astype(np.uint8)
    return DIVERGING[idx]


def sequential(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Non-negative values -> ``uint8`` RGB from black (0) to pale yellow (``limit``)."""
    v = np.maximum(np.asarray(values, np.float64), 0)
    lim = limit if limit else _limit(v)
    return SEQUENTIAL[np.clip(v / lim * 255, 0, 255).astype(np.uint8)]


def grid(tiles: Sequence[np.ndarray] | np.ndarray, cols: int, scale: int = 1, pad: int = 3,
         background: int = PAPER) -> np.ndarray:
    """Equal-sized RGB tiles, each upscaled by ``scale``, in one image ``cols`` wide."""
    tiles = [upscale(np.asarray(t, np.uint8), scale) for t in tiles]
    if not tiles:
        return np.full((1, 1, 3), background, np.uint8)
    h, w = tiles[0].shape[:2]
    cols = max(1, min(cols, len(tiles)))
    rows = -(-len(tiles) // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), background, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + h, x:x + w] = tile
    return out


def outlined(colours: np.ndarray, digit: np.ndarray, scale: int,
             color: tuple[int, int, int] = OUTLINE) -> np.ndarray:
    """``colours`` (28x28x3) upscaled by ``scale`` with the digit's outline drawn on top, so
    a weight or saliency map can be read against the strokes it refers to."""
    out = upscale(np.asarray(colours, np.uint8), scale).copy()
    mask = upscale((np.asarray(digit, np.float32) > OUTLINE_LEVEL).astype(np.uint8), scale)
    edge = mask & (1 - cv2.erode(mask, np.ones((3, 3), np.uint8), borderValue=0))
    out[edge.astype(bool)] = color
    return out
