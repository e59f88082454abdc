"""Training-time distortions that make MNIST look like the handwriting people produce.

Real digits differ from MNIST's in slant, aspect, size left after fitting, stroke width
and wobble; each distortion here covers one of those. All functions take and return
``(N, 28, 28) float32 in [0, 1]`` and draw randomness only from the ``rng`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random distortions (0 disables one)."""

    rotate_deg: float = 12.0     # people tilt the page or the digit
    shear: float = 0.25          # handwriting slant, as x += shear * y
    scale: float = 0.12          # +-fraction; digits fill the 20x20 box unevenly
    aspect: float = 0.12         # +-fraction; narrow and wide writers
    shift_px: float = 1.5        # centre-of-mass centring is never exact
    elastic_p: float = 0.5       # probability of an elastic wobble (Simard et al. 2003)
    elastic_alpha: float = 3.0   # wobble amplitude in pixels
    elastic_sigma: float = 3.5   # wobble smoothness in pixels
    stroke_p: float = 0.5        # probability of making strokes thicker or thinner


NONE = AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.5, 0.0)


def _affine(rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    angle = np.deg2rad(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    s = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
    a = 1.0 + rng.uniform(-cfg.aspect, cfg.aspect)
    sh = rng.uniform(-cfg.shear, cfg.shear)
    c, si = np.cos(angle), np.sin(angle)
    m = np.array([[c, -si], [si, c]]) @ np.array([[1.0, sh], [0.0, 1.0]]) @ np.diag([s * a, s / a])
    centre = np.array([14.0, 14.0])
    offset = centre - m @ centre + rng.uniform(-cfg.shift_px, cfg.shift_px, 2)
    return np.hstack([m, offset[:, None]]).astype(np.float32)


def augment(images: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Randomly distort each image. ``(N, 28, 28) float32 [0, 1]`` in and out."""
    images = np.asarray(images, np.float32)
    out = np.empty_like(images)
    grid_y, grid_x = np.mgrid[0:28, 0:28].astype(np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2, 2))
    for i, img in enumerate(images):
        if cfg.stroke_p and rng.random() < cfg.stroke_p:
            if rng.random() < 0.5:
                img = cv2.dilate(img, kernel)
            else:  # thinner: raise the ink threshold, keeping soft edges
                t = rng.uniform(0.2, 0.45)
                img = np.clip((img - t) / (1 - t), 0, 1)
        img = cv2.warpAffine(img, _affine(rng, cfg), (28, 28), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if cfg.elastic_p and rng.random() < cfg.elastic_p:
            dx = cv2.GaussianBlur(rng.uniform(-1, 1, (28, 28)).astype(np.float32), (0, 0), cfg.elastic_sigma)
            dy = cv2.GaussianBlur(rng.uniform(-1, 1, (28, 28)).astype(np.float32), (0, 0), cfg.elastic_sigma)
            norm = cfg.elastic_alpha / max(np.abs(dx).max(), np.abs(dy).max(), 1e-6)
            img = cv2.remap(img, grid_x + dx * norm, grid_y + dy * norm, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out[i] = img
    return np.clip(out, 0, 1)
