"""A photo of one garment on a plain background -> the 28x28 image a Fashion-MNIST model
expects, made the way Zalando made the dataset's own (Xiao et al. 2017, "Fashion-MNIST":
the product photo's edges trimmed to the product, its longest side resized to 28 pixels,
its shorter side padded so it sits in the centre, the intensities negated, 8-bit grey).

So a garment here is cropped to its box (not to a 20x20 box like a digit, and centred by
its box, not its mass), and comes out grey on black: the background black, the garment
as bright as it is dark against the background (a white shirt on a white table is nearly
black, as in the dataset). A garment lighter than a dark background is taken the other way
round. Where that cannot be done (no plain background around the garment, nothing on it,
the garment cut off by the frame) :class:`NoGarmentError` says why. Images in are
``(H, W, 3|4) uint8`` (RGB(A), as :func:`~.decode.decode_image` gives) or ``(H, W)``;
out ``(28, 28) float32 in [0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .common import NoDigitError

SIDE = 28   # Fashion-MNIST's images: the garment's longest side fills them


class NoGarmentError(NoDigitError):
    """The photo shows no garment this can cut out; the message says why, in words."""


@dataclass(frozen=True)
class GarmentConfig:
    """Every threshold of :func:`garment_input`."""

    work_side: int = 400         # the photo is reduced to this longest side first: enough
                                 # for a 28-pixel result, and fast
    border: float = 0.04         # width of the frame strip the background is read from,
                                 # as a fraction of the shorter side
    plain_share: float = 0.75    # this share of the strip must lie within `contrast` of
                                 # its median grey for a plain background (the garment
                                 # may touch an edge, a shadow darken a corner)
    contrast: float = 0.08       # a pixel this far from the background (grey, or any
                                 # colour channel) belongs to the garment
    blur: float = 1.0            # Gaussian sigma (pixels at work size) against sensor noise
    close_px: int = 5            # gaps this wide inside the garment are closed
    min_area: float = 0.005      # the garment covers at least this share of the photo
    min_part: float = 0.002      # specks smaller than this share of the photo are dust
    max_edges: int = 2           # a garment touching more edges of the frame than this
                                 # is cut off (or the photo has no background)
    edge_touch: float = 0.25     # ... where it covers this share of that edge


DEFAULT_GARMENT = GarmentConfig()


def _grey(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(grey, colour)``: ``(H, W)`` and ``(H, W, C)`` float32 in [0, 1], a transparent
    background made white (a product photo's usual background)."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    img = img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
    if img.shape[2] in (2, 4):   # alpha: composite on white
        alpha = img[..., -1:]
        img = img[..., :-1] * alpha + (1 - alpha)
    grey = img.mean(axis=2) if img.shape[2] == 1 else (
        img[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32))
    return grey.astype(np.float32), img


def _reduced(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def _strip(a: np.ndarray, width: int) -> np.ndarray:
    """The pixels of ``a`` (``(H, W[, C])``) within ``width`` of the frame, as rows."""
    parts = [a[:width], a[-width:], a[width:-width, :width], a[width:-width, -width:]]
    return np.concatenate([p.reshape(-1, *a.shape[2:]) for p in parts])


def garment_mask(image: np.ndarray, cfg: GarmentConfig = DEFAULT_GARMENT
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """``(mask, grey, background)`` of a photo: where the garment is (``(h, w) bool`` at
    work size), the photo's grey levels there, and the background's grey level. Raises
    :class:`NoGarmentError` when the background is not plain or no garment is found."""
    grey, colour = _grey(image)
    grey, colour = _reduced(grey, cfg.work_side), _reduced(colour, cfg.work_side)
    if colour.ndim == 2:
        colour = colour[..., None]
    if cfg.blur:
        grey = cv2.GaussianBlur(grey, (0, 0), cfg.blur)
        colour = cv2.GaussianBlur(colour, (0, 0), cfg.blur).reshape(colour.shape)
    h, w = grey.shape
    width = max(1, int(round(cfg.border * min(h, w))))
    strip = _strip(grey, width)
    background = float(np.median(strip))
    plain = float(np.mean(np.abs(strip - background) <= cfg.contrast))
    if plain < cfg.plain_share:
        raise NoGarmentError(
            "the background is not plain: photograph the garment alone on an even, "
            "single-coloured surface (a sheet, a wall, a table), with some of it showing "
            "all round")
    bg_colour = np.median(_strip(colour, width), axis=0)
    far = np.abs(colour - bg_colour).max(axis=2) > cfg.contrast
    mask = far | (np.abs(grey - background) > cfg.contrast)
    k = max(1, cfg.close_px)
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= cfg.min_part * h * w]
    mask = np.isin(labels, keep)
    if mask.sum() < cfg.min_area * h * w:
        raise NoGarmentError(
            "no garment found: nothing stands out from the background. Use a background "
            "that differs from the garment (a dark garment on a light sheet, or the "
            "other way round)")
    edges = [mask[0].mean(), mask[-1].mean(), mask[:, 0].mean(), mask[:, -1].mean()]
    if sum(e >= cfg.edge_touch for e in edges) > cfg.max_edges:
        raise NoGarmentError(
            "the garment fills the photo or runs off its edges: step back so the whole "
            "garment shows with plain background all round")
    return mask, grey, background


def garment_input(image: np.ndarray, cfg: GarmentConfig = DEFAULT_GARMENT) -> np.ndarray:
    """A photo of one garment on a plain background -> ``(28, 28) float32 in [0, 1]``,
    grey on black, as Fashion-MNIST's images were made (module docstring). Raises
    :class:`NoGarmentError` with the reason when that cannot be done."""
    mask, grey, background = garment_mask(image, cfg)
    darker = float(np.mean(grey[mask])) <= background
    # Negated (the dataset's step): the background goes to black, the garment to how far
    # it is from the background; the other way round for a light garment on a dark ground.
    if darker:
        value = (background - grey) / max(background, 1e-3)
    else:
        value = (grey - background) / max(1.0 - background, 1e-3)
    value = np.clip(value, 0, 1) * mask
    rows, cols = np.nonzero(mask)
    crop = value[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = crop.shape
    scale = SIDE / max(h, w)
    fitted = cv2.resize(crop, (max(1, round(w * scale)), max(1, round(h * scale))),
                        interpolation=cv2.INTER_AREA)
    out = np.zeros((SIDE, SIDE), np.float32)
    fh, fw = fitted.shape
    # The odd pixel of margin goes above and to the left, as in the dataset.
    top, left = (SIDE - fh + 1) // 2, (SIDE - fw + 1) // 2
    out[top:top + fh, left:left + fw] = fitted
    return np.clip(out, 0, 1)
