"""Stress a digit: shift, rotate, scale, thicken/thin and add noise; sweep a transform.

Transforms act on ``(28, 28) float32 in [0, 1]`` model inputs and return the same, so a
class sees exactly what each model is asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .inference import read_input


@dataclass(frozen=True)
class Transform:
    shift_x: float = 0.0     # pixels, + = right
    shift_y: float = 0.0     # pixels, + = down
    rotate: float = 0.0      # degrees, + = counter-clockwise
    scale: float = 1.0       # 1 = unchanged
    thickness: int = 0       # + = dilate, - = erode, in 28x28 pixels
    noise: float = 0.0       # std of added Gaussian noise
    seed: int = 0            # the noise pattern


def apply(image: np.ndarray, t: Transform) -> np.ndarray:
    """Apply ``t`` to one ``(28, 28) float32 [0, 1]`` image."""
    img = np.asarray(image, np.float32)
    if t.thickness:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(t.thickness) + 1,) * 2)
        img = cv2.dilate(img, k) if t.thickness > 0 else cv2.erode(img, k)
    m = cv2.getRotationMatrix2D((13.5, 13.5), t.rotate, t.scale)
    m[:, 2] += (t.shift_x, t.shift_y)
    img = cv2.warpAffine(img, m, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0)
    if t.noise:
        img = img + np.random.default_rng(t.seed).normal(0, t.noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


SWEEPS = {  # name -> (Transform field, values)
    "rotate": ("rotate", np.linspace(-60, 60, 25)),
    "shift_x": ("shift_x", np.linspace(-8, 8, 17)),
    "shift_y": ("shift_y", np.linspace(-8, 8, 17)),
    "scale": ("scale", np.linspace(0.4, 1.6, 25)),
    "thickness": ("thickness", np.arange(-2, 4)),
    "noise": ("noise", np.linspace(0, 0.8, 17)),
}


def sweep(image: np.ndarray, models: dict, target: int, name: str,
          base: Transform = Transform()) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each model's probability of ``target`` as one transform sweeps its range.

    Returns ``(values, {model: (len(values),) probabilities})``; every model sees the same
    batch of transformed images, read as every page reads a digit
    (:func:`~mnist_core.reading.inference.read_input`), in one call.
    """
    field, values = SWEEPS[name]
    cast = int if field == "thickness" else float
    batch = np.stack([apply(image, Transform(**{**base.__dict__, field: cast(v)})) for v in values])
    return values, {n: p[:, target] for n, p in read_input(batch, models).items()}
