"""What the preprocessing stages share: the "is ink" level, the per-digit record of every
stage and of which side was ink, the error for an image without a digit, and shrinking an
image to a working side."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# An ink map pixel this strong or stronger is ink: it joins components, bounds crops, and
# spans a column's height when touching digits are cut. Weaker ones are anti-aliased
# fringe or noise left over from the paper.
INK_LEVEL = 0.25


@dataclass(frozen=True)
class Polarity:
    """Which side of a picture is ink: the decision, the paper level and the reasons.

    ``paper_mask``: the ``(h, w) bool`` pixels taken for paper while deciding, at the vote's
    resolution, handed on to the lighting fit so the paper is not fitted twice (None when
    the decision needed no fit); left out of comparisons and ``repr``.
    """

    light_ink: bool             # True: ink is lighter than the paper (a canvas's white
                                # strokes, chalk); False: dark ink on light paper
    paper_level: float          # the paper's grey level, 0-255, where it was judged
    reasons: tuple[str, ...]    # each witness and what it said, in words, for display
    paper_mask: np.ndarray | None = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        """One line: the decision, then the reasons."""
        side = "light ink on dark paper" if self.light_ink else "dark ink on light paper"
        return f"{side} (paper grey {self.paper_level:.0f}): " + "; ".join(self.reasons)


class NoDigitError(ValueError):
    """The image holds no ink that could be a digit (blank canvas, empty page)."""


@dataclass
class Stages:
    """Every step from input to model input, for display and debugging.

    ``ink``: ``(h, w) float32 [0, 1]`` white-on-black ink at working resolution.
    ``mask``: ``(h, w) bool`` ink kept after speck removal. ``box``: ``(x, y, w, h)`` of the
    digit in ``ink``. ``cropped``: ``(bh, bw) float32 [0, 1]``, the digit cut out.
    ``fitted``: ``(<=20, <=20) float32 [0, 1]`` after fitting. ``boxed``: ``(28, 28)``, the
    fitted digit pasted at the geometric centre (before centring by mass). ``final``:
    ``(28, 28) float32 [0, 1]``, what the models see. ``stroke_width``: the crop's stroke
    width in pixels at the normalising resolution, before it was normalised.
    ``polarity``: which side of the input was taken for ink, and why
    (:class:`Polarity`, decided by :func:`mnist_core.preprocess.ink.polarity`).
    """

    ink: np.ndarray
    mask: np.ndarray
    box: tuple[int, int, int, int]
    cropped: np.ndarray
    fitted: np.ndarray
    boxed: np.ndarray
    final: np.ndarray
    stroke_width: float = 0.0
    notes: list[str] = field(default_factory=list)
    polarity: Polarity | None = None


def as_uint8(image: np.ndarray) -> np.ndarray:
    """Any image as ``(H, W, C) uint8``: ``(H, W)`` grey gains a channel axis, float input
    in [0, 1] is scaled to 0-255."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    return img[..., None] if img.ndim == 2 else img


def resize_max(img: np.ndarray, side: int) -> np.ndarray:
    """``img`` shrunk (area-averaged) so its longer side is at most ``side``; never enlarged.
    ``(H, W, C)`` keeps its channel axis, even a single channel (which OpenCV drops)."""
    h, w = img.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return img
    out = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                     interpolation=cv2.INTER_AREA)
    return out[..., None] if img.ndim == 3 and out.ndim == 2 else out
