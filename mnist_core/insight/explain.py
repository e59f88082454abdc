"""Look inside the models: first-layer templates, activations, feature maps, saliency.

Each model computes its own views (:class:`~mnist_core.models.model.Model`: ``input_gradient``,
``first_layer_templates`` and ``hidden_activations`` for the ``"mlp"`` family,
``conv_filters`` and ``feature_maps`` for ``"conv"``); the functions here are thin
wrappers over them, and :func:`occlusion_map` needs nothing but predictions. All inputs
are ``(28, 28) float32 in [0, 1]`` images; all maps come back as float32 arrays ready to
show as pictures.
"""

from __future__ import annotations

import numpy as np

from ..models.model import Model


def first_layer_templates(model: Model, n: int = 16) -> np.ndarray:
    """:meth:`Model.first_layer_templates <mnist_core.models.model.Model.first_layer_templates>`."""
    return model.first_layer_templates(n)


def hidden_activations(model: Model, image: np.ndarray) -> list[np.ndarray]:
    """:meth:`Model.hidden_activations <mnist_core.models.model.Model.hidden_activations>`."""
    return model.hidden_activations(image)


def conv_filters(model: Model, layer_index: int = 0) -> np.ndarray:
    """:meth:`Model.conv_filters <mnist_core.models.model.Model.conv_filters>`."""
    return model.conv_filters(layer_index)


def feature_maps(model: Model, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """:meth:`Model.feature_maps <mnist_core.models.model.Model.feature_maps>`."""
    return model.feature_maps(image)


def input_gradient(model: Model, image: np.ndarray, target: int) -> np.ndarray:
    """:meth:`Model.input_gradient <mnist_core.models.model.Model.input_gradient>`: by hand for
    every model, each layer's backward rule in NumPy (:mod:`mnist_core.engine.layers`); no
    TensorFlow."""
    return model.input_gradient(image, target)


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
