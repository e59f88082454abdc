"""MNIST-style normalisation of one cropped digit: stroke width, 20x20 box, 28x28 field,
centre of mass at the centre.

MNIST digits were made by cropping each digit to its ink, fitting it into a 20x20 box
keeping the aspect ratio (anti-aliased), and pasting it into 28x28 so that its centre of
mass sits at the centre. A model trained on MNIST has only ever seen that, so every crop
is put through the same steps. Images are ``(h, w) float32 in [0, 1]``, white ink on black.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Half-inked: the body of a stroke, where its width is measured and which thinning must
# not erase.
STROKE_LEVEL = 0.5


@dataclass(frozen=True)
class GeometryConfig:
    """How a cropped digit is sized and centred as MNIST's are."""

    size: int = 28                  # output side, as MNIST
    box: int = 20                   # the digit's longer side after fitting, as MNIST
    stroke_ratio: float = 0.117     # median MNIST stroke width / digit height (measured on train)
    stroke_tolerance: float = 1.35  # widths within this factor of the target are left alone
    stroke_side: int = 96           # the digit's side while its strokes are normalised: fine
                                    # enough that one pixel of morphology is a small step
    thin_share: float = 0.75        # a marker stroke is eroded by this share of its excess
                                    # width only: erosion also eats line ends and junctions
    keep_share: float = 0.25        # thinning that would leave less than this share of the
                                    # ink is not done: never erase the digit


DEFAULT_GEOMETRY = GeometryConfig()


def stroke_width(ink: np.ndarray, level: float = STROKE_LEVEL) -> float:
    """Mean stroke width in pixels of a white-on-black image: 2 x area / perimeter.

    ``ink``: ``(h, w)`` float, pixels above ``level`` count as stroke. A stroke of length
    L and width w has area ~ L*w and outline ~ 2L, so this holds for any digit without
    skeletonising it.
    """
    binary = (ink > level).astype(np.uint8)
    area = float(binary.sum())
    if area == 0:
        return 0.0
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * area / max(perimeter, 1.0)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _normalise_stroke(crop: np.ndarray, config: GeometryConfig) -> tuple[np.ndarray, float]:
    """Thicken hairlines and thin marker strokes towards MNIST's width (relative to size).

    ``crop``: ``(h, w) float32 [0, 1]`` -> the digit resampled so its longer side is
    ``stroke_side``, strokes normalised, and its stroke width before normalising."""
    scale = config.stroke_side / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    work = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    width = stroke_width(work)
    target = config.stroke_ratio * config.stroke_side
    if width <= 0:
        return work, width
    ratio = width / target
    if ratio < 1 / config.stroke_tolerance:
        work = cv2.dilate(work, _disk(max(1, round((target - width) / 2))))
    elif ratio > config.stroke_tolerance:
        thinned = cv2.erode(work, _disk(max(1, round((width - target) / 2 * config.thin_share))))
        if (thinned > STROKE_LEVEL).sum() > config.keep_share * (work > STROKE_LEVEL).sum():
            work = thinned
    return work, width


def fit_box(crop: np.ndarray, box: int = DEFAULT_GEOMETRY.box) -> np.ndarray:
    """Scale ``crop`` so its longer side is ``box`` pixels, keeping aspect (anti-aliased).

    ``crop``: ``(h, w) float32 [0, 1]`` -> ``(<=box, <=box) float32 [0, 1]``.
    """
    h, w = crop.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.clip(cv2.resize(crop, size, interpolation=interp), 0, 1).astype(np.float32)


def paste_centre(fitted: np.ndarray, size: int = DEFAULT_GEOMETRY.size) -> np.ndarray:
    """Paste a fitted digit at the geometric centre of a ``(size, size)`` black field
    (``float32``)."""
    out = np.zeros((size, size), np.float32)
    h, w = fitted.shape
    y, x = (size - h) // 2, (size - w) // 2
    out[y:y + h, x:x + w] = fitted
    return out


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """Intensity-weighted ``(row, col)`` centre of a 2-D image (its middle when blank)."""
    total = float(img.sum())
    if total == 0:
        return (img.shape[0] - 1) / 2, (img.shape[1] - 1) / 2
    rows, cols = np.indices(img.shape)
    return float((rows * img).sum() / total), float((cols * img).sum() / total)


def centre_by_mass(img: np.ndarray) -> np.ndarray:
    """Shift a ``(28, 28)`` image by whole pixels so its centre of mass is at (14, 14).

    Whole-pixel shifts keep strokes as crisp as MNIST's (MNIST's own centres of mass sit
    at about (14, 14) in 0-based pixel coordinates; see tests).
    """
    size = img.shape[0]
    cy, cx = centre_of_mass(img)
    dy, dx = int(round(size / 2 - cy)), int(round(size / 2 - cx))
    return np.roll(np.roll(img, dy, axis=0), dx, axis=1) if _shift_fits(img, dy, dx) else \
        _shift_clip(img, dy, dx)


def _shift_fits(img: np.ndarray, dy: int, dx: int) -> bool:
    rows, cols = np.nonzero(img)
    if rows.size == 0:
        return True
    n = img.shape[0]
    return (rows.min() + dy >= 0 and rows.max() + dy < n and
            cols.min() + dx >= 0 and cols.max() + dx < n)


def _shift_clip(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(img)
    n = img.shape[0]
    src_y, dst_y = slice(max(0, -dy), min(n, n - dy)), slice(max(0, dy), min(n, n + dy))
    src_x, dst_x = slice(max(0, -dx), min(n, n - dx)), slice(max(0, dx), min(n, n + dx))
    out[dst_y, dst_x] = img[src_y, src_x]
    return out


def normalise_crop(crop: np.ndarray, config: GeometryConfig = DEFAULT_GEOMETRY
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A cropped digit ``(h, w) float32 [0, 1]`` -> ``(fitted, boxed, final, stroke_width)``.

    ``final`` is ``(28, 28) float32 [0, 1]`` with its brightest stroke at 1, as in MNIST.
    """
    work, width = _normalise_stroke(crop, config)
    fitted = fit_box(work, config.box)
    peak = float(fitted.max())
    if peak > 0:
        fitted = np.clip(fitted / peak, 0, 1)
    boxed = paste_centre(fitted, config.size)
    return fitted, boxed, centre_by_mass(boxed), width
