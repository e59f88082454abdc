"""Look inside the models, from the outside: how much hiding each region of a digit lowers
a model's probability (:func:`occlusion_map`). What a model shows of its inside (input
gradients, first-layer templates, hidden activations, filters, feature maps) are its own
methods (:class:`~mnist_core.models.model.Model`). Images are ``(28, 28) float32 in
[0, 1]``; maps come back as float32 arrays ready to show as pictures.
"""

from __future__ import annotations

import numpy as np


def occlusion_map(predict_proba, image: np.ndarray, target: int, patch: int = 6,
                  stride: int = 2) -> np.ndarray:
    """How much hiding each region lowers p(target): ``(28, 28) float32``, >= 0 = needed.

    Slides a black ``patch`` x ``patch`` square over the image (all positions predicted in
    one batch) and averages the drop in probability over the patches covering each pixel.
    """
    image = np.asarray(image, np.float32)
    base = float(predict_proba(image[None])[0, target])
    positions = [(y, x) for y in range(0, 28 - patch + 1, stride)
                 for x in range(0, 28 - patch + 1, stride)]
    batch = np.repeat(image[None], len(positions), axis=0)
    for k, (y, x) in enumerate(positions):
        batch[k, y:y + patch, x:x + patch] = 0
    drops = base - predict_proba(batch)[:, target]
    heat = np.zeros((28, 28), np.float32)
    count = np.zeros((28, 28), np.float32)
    for (y, x), d in zip(positions, drops):
        heat[y:y + patch, x:x + patch] += d
        count[y:y + patch, x:x + patch] += 1
    return heat / np.maximum(count, 1)
