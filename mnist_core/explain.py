"""Look inside the models: first-layer templates, activations, feature maps, saliency.

All inputs are ``(28, 28) float32 in [0, 1]`` images; all maps come back as float32 arrays
ready to show as pictures. Keras is imported only for Keras models.
"""

from __future__ import annotations

import numpy as np

from .numpy_net import NumpyMLP


def first_layer_templates(model, n: int = 16) -> np.ndarray:
    """The first ``n`` first-layer weight vectors of a dense model as ``(n, 28, 28)``.

    Each hidden unit's 784 input weights, laid out as an image, show the stroke pattern
    that excites it (positive) or inhibits it (negative).
    """
    if isinstance(model, NumpyMLP):
        w = model.weights[0]
    else:
        dense = next(layer for layer in model.layers if layer.__class__.__name__ == "Dense")
        w = dense.get_weights()[0]
    return np.ascontiguousarray(w[:, :n].T.reshape(-1, 28, 28)).astype(np.float32)


def hidden_activations(model, image: np.ndarray) -> list[np.ndarray]:
    """Activations of each hidden layer of a dense model for one image: list of ``(units,)``."""
    x = np.asarray(image, np.float32).reshape(1, 784)
    if isinstance(model, NumpyMLP):
        acts = []
        a = x
        for w, b in zip(model.weights[:-1], model.biases[:-1]):
            a = model._act(a @ w + b)
            acts.append(a[0])
        return acts
    import keras
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"][:-1]
    probe = keras.Model(model.inputs, [layer.output for layer in dense])
    outs = probe([np.asarray(image, np.float32).reshape(1, 28, 28, 1)], training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [np.asarray(o)[0] for o in outs]


def conv_layers(model) -> list:
    return [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]


def conv_filters(model, layer_index: int = 0) -> np.ndarray:
    """Kernels of a conv layer averaged over input channels: ``(filters, k, k)``."""
    kernel = conv_layers(model)[layer_index].get_weights()[0]  # (k, k, in, out)
    return np.transpose(kernel.mean(axis=2), (2, 0, 1)).astype(np.float32)


def feature_maps(model, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Output of each conv layer (after its activation where it has one) for one image.

    Returns ``[(layer name, (channels, h, w) float32), ...]``.
    """
    import keras
    convs = conv_layers(model)
    # A conv followed by BatchNorm and ReLU is shown after the ReLU, as the next layer sees it.
    taps = []
    for conv in convs:
        i = model.layers.index(conv)
        tap = conv
        for nxt in model.layers[i + 1:i + 3]:
            if nxt.__class__.__name__ in ("BatchNormalization", "ReLU", "Activation"):
                tap = nxt
            else:
                break
        taps.append((conv.name, tap))
    probe = keras.Model(model.inputs, [t.output for _, t in taps])
    outs = probe([np.asarray(image, np.float32).reshape(1, 28, 28, 1)], training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [(name, np.transpose(np.asarray(o)[0], (2, 0, 1)).astype(np.float32))
            for (name, _), o in zip(taps, outs)]


def input_gradient(model, image: np.ndarray, target: int) -> np.ndarray:
    """d log p(target) / d pixel for one image: ``(28, 28) float32``.

    NumPy network: by hand through its own ``backward``. Keras: ``tf.GradientTape``.
    """
    x = np.asarray(image, np.float32).reshape(1, 28, 28)
    if isinstance(model, NumpyMLP):
        return model.input_gradient(x, np.array([target]))[0].astype(np.float32)
    import tensorflow as tf
    t = tf.constant(x[..., None])
    with tf.GradientTape() as tape:
        tape.watch(t)
        p = model(t, training=False)
        logp = tf.math.log(p[0, target] + 1e-12)
    return tape.gradient(logp, t).numpy()[0, ..., 0].astype(np.float32)


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
