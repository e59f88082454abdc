"""Training-time changes that suit photographs of clothing (Fashion-MNIST), not digits.

A garment is the same garment mirrored (a shoe pointing right is still a sneaker, while a
mirrored 7 is no 7), and Fashion-MNIST's products were cropped and centred by a machine, so
a photo cropped by this app's preprocessing lands a pixel or two off. Hence left-right
flips and small shifts; none of the digit distortions (slant, elastic wobble, stroke width,
writing styles) of :mod:`.augment`, which would turn a shirt's outline into nothing a
camera makes. Images are ``(N, 28, 28) float32 in [0, 1]``, garment light on black; all
randomness comes from the ``rng`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClothingAugment:
    """Ranges of the random changes for clothing (0 disables one)."""

    flip_p: float = 0.5    # probability of mirroring an image left-right
    shift_px: int = 2      # whole pixels an image moves at most along each axis; the
                           # border it leaves is black, as Fashion-MNIST's background

    def apply(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each image flipped with chance :attr:`flip_p` and moved by a random whole
        number of pixels in ``[-shift_px, shift_px]`` along each axis.
        ``(N, 28, 28) float32`` in and out (a new array)."""
        return shift(flip(images, rng.random(len(images)) < self.flip_p),
                     rng.integers(-self.shift_px, self.shift_px + 1, (len(images), 2)))


def flip(images: np.ndarray, which: np.ndarray) -> np.ndarray:
    """``images`` (``(N, 28, 28)``) with those where ``which`` (``(N,) bool``) is set
    mirrored left-right; a new array."""
    out = np.array(images, np.float32, copy=True)
    out[which] = out[which, :, ::-1]
    return out


def shift(images: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """``images`` (``(N, H, W)``) each moved by ``moves[i] = (dy, dx)`` whole pixels (down
    and right positive), black coming in at the edges; a new ``float32`` array."""
    n, h, w = images.shape
    m = int(np.abs(moves).max()) if len(moves) else 0
    if m == 0:
        return np.array(images, np.float32, copy=True)
    padded = np.zeros((n, h + 2 * m, w + 2 * m), np.float32)
    padded[:, m:m + h, m:m + w] = images
    # Image i is the window of the padded image starting at (m - dy, m - dx).
    rows = (m - moves[:, 0])[:, None] + np.arange(h)[None, :]   # (N, H)
    cols = (m - moves[:, 1])[:, None] + np.arange(w)[None, :]   # (N, W)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
