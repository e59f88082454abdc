"""What Look inside asks of a Keras model, in NumPy: layer outputs and input gradients.

:mod:`mnist_core.keras_numpy` evaluates a saved ``.keras`` Sequential model layer by layer;
this module keeps each layer's input and output (:func:`trace`) and runs the chain rule
back through them by hand (:func:`input_gradient`), in inference mode (BatchNorm with its
moving statistics, Dropout as the identity), so gradients, feature maps and hidden
activations never import TensorFlow (~600 MB). Tests check every layer type against
TensorFlow's ``GradientTape`` and against finite differences.

Backward rules, for an upstream gradient ``g`` of the layer's output:

* Dense ``y = act(x W + b)``: ``dz = g * act'(z)``, ``dx = dz W^T``.
* Conv2D (stride 1, "valid" or TensorFlow's "same"): ``dx`` is the full correlation of
  ``dz`` with the kernel turned 180 degrees and its channel axes swapped, computed as
  ``dz @ kernel^T`` spread back over each output pixel's window, then the padding cropped
  off.
* BatchNormalization: ``dx = g * gamma / sqrt(var + eps)``.
* ReLU / Activation: ``act'`` as above; MaxPooling2D: ``g`` goes to the first maximum of
  each window (as TensorFlow's ``MaxPoolGrad``); AveragePooling2D: ``g`` shared evenly;
  Flatten: a reshape; Dropout: the identity.
* The softmax that ends the network is folded into the log: ``d log p_t / dz = e_t - p``,
  exact even where ``p_t`` underflows.
"""

from __future__ import annotations

import numpy as np

from .keras_numpy import Layer, apply_layer

# Where feature maps are tapped: a conv followed by these is shown after them (the map
# the next layer sees).
_AFTER_CONV = ("BatchNormalization", "ReLU", "Activation")


def _activation(layer: Layer) -> str:
    return layer.config.get("activation", "linear") if layer.kind in ("Dense", "Conv2D") \
        else layer.config["activation"] if layer.kind == "Activation" else "linear"


def _linear_part(layer: Layer) -> Layer:
    """The layer without its activation (Dense and Conv2D carry one)."""
    return Layer(layer.kind, {**layer.config, "activation": "linear"}, layer.weights)


def trace(layers: list[Layer], x: np.ndarray) -> list[np.ndarray]:
    """Every layer's input, then the network's output: ``len(layers) + 1`` arrays.

    For Dense and Conv2D layers the pre-activation is kept too (see :func:`_backward`),
    so the list holds ``(pre-activation, output)`` pairs for those.
    """
    values: list = [x]
    for layer in layers:
        if _activation(layer) != "linear" and layer.kind != "Activation":
            z = apply_layer(x, _linear_part(layer))
            x = _apply(_activation(layer), z)
            values.append((z, x))
        else:
            x = apply_layer(x, layer)
            values.append(x)
    return values


def _out(value) -> np.ndarray:
    return value[1] if isinstance(value, tuple) else value


def _apply(name: str, z: np.ndarray) -> np.ndarray:
    return apply_layer(z, Layer("Activation", {"activation": name}, []))


def _activation_grad(name: str, z: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g`` (gradient of the activation's output ``y = act(z)``) back to ``z``."""
    if name == "linear":
        return g
    if name == "relu":
        return g * (z > 0)
    if name == "tanh":
        return g * (1 - y * y)
    if name == "sigmoid":
        return g * y * (1 - y)
    if name == "softmax":
        return y * (g - (g * y).sum(axis=-1, keepdims=True))
    raise ValueError(f"no gradient for activation {name!r}")


def _conv_input_grad(dz: np.ndarray, layer: Layer, in_shape: tuple) -> np.ndarray:
    """``dz`` (the gradient of a stride-1 conv's linear output, ``(N, H', W', out)``) back
    to its input of ``in_shape``: each output pixel's gradient spread over its window
    (``dz @ kernel^T`` gives every window's ``(kh, kw, in)`` share in one product, added
    into place one kernel offset at a time), then the padding cropped off. The same sums
    as the full correlation with the turned kernel, without copying ``kh * kw`` shifted
    windows of ``dz`` (the training loop runs it on whole batches)."""
    kernel = layer.weights[0]  # (kh, kw, cin, cout)
    kh, kw, cin, cout = kernel.shape
    n, h, w = dz.shape[:3]
    shares = (dz.reshape(-1, cout) @ kernel.reshape(kh * kw * cin, cout).T).reshape(
        n, h, w, kh, kw, cin)
    grad = np.zeros((n, h + kh - 1, w + kw - 1, cin), shares.dtype)
    for i in range(kh):
        for j in range(kw):
            grad[:, i:i + h, j:j + w] += shares[:, :, :, i, j]
    if layer.config.get("padding") == "same":
        top, left = (kh - 1) // 2, (kw - 1) // 2
        grad = grad[:, top:top + in_shape[1], left:left + in_shape[2]]
    return grad


def _pool_grad(g: np.ndarray, x: np.ndarray, layer: Layer, kind: str,
               pooled: np.ndarray | None = None) -> np.ndarray:
    """``g`` (the pooled output's gradient) back to the pooling's input ``x``; ``pooled``:
    max pooling's output, when the caller kept it (else found again)."""
    ph, pw = layer.config.get("pool_size", (2, 2))
    n, h, w, c = x.shape
    hh, ww = h // ph, w // pw
    grad = np.zeros_like(x)
    if kind == "AveragePooling2D":
        share = g / (ph * pw)
        for i in range(ph):
            for j in range(pw):
                grad[:, i:hh * ph:ph, j:ww * pw:pw] = share
        return grad
    # The first maximum of each window (in row-major order) takes the gradient, as
    # TensorFlow's MaxPoolGrad routes it: the window's offsets in that order, each taking
    # the windows whose maximum it holds and no earlier offset took.
    windows = [x[:, i:hh * ph:ph, j:ww * pw:pw] for i in range(ph) for j in range(pw)]
    top = pooled if pooled is not None else np.maximum.reduce(windows)
    free = np.ones(top.shape, bool)
    for k, window in enumerate(windows):
        hit = (window == top) & free
        grad[:, k // pw:hh * ph:ph, k % pw:ww * pw:pw] = np.where(hit, g, 0)
        free &= ~hit
    return grad


def _backward(layer: Layer, x: np.ndarray, value, g: np.ndarray,
              grad_of_pre: bool = False) -> np.ndarray:
    """The gradient of the layer's input ``x``, given ``g``: the gradient of its output
    (``value`` as :func:`trace` kept it), or of its pre-activation when ``grad_of_pre``."""
    kind, cfg = layer.kind, layer.config
    if kind in ("Dense", "Conv2D"):
        if isinstance(value, tuple) and not grad_of_pre:
            z, y = value
            g = _activation_grad(_activation(layer), z, y, g)
        if kind == "Dense":
            return g @ layer.weights[0].T
        return _conv_input_grad(g, layer, x.shape)
    if kind == "Activation":
        return g if grad_of_pre else _activation_grad(cfg["activation"], x, value, g)
    if kind == "ReLU":
        return g * (x > 0)
    if kind == "BatchNormalization":
        w = list(layer.weights)
        gamma = w.pop(0) if cfg.get("scale", True) else 1.0
        if cfg.get("center", True):
            w.pop(0)
        _, var = w
        return g * (gamma / np.sqrt(var + cfg.get("epsilon", 1e-3)))
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        return _pool_grad(g, x, layer, kind, value if kind == "MaxPooling2D" else None)
    if kind == "Flatten":
        return g.reshape(x.shape)
    if kind in ("Dropout", "InputLayer"):
        return g
    raise ValueError(f"no gradient for layer type {kind}")


def input_gradient(layers: list[Layer], input_shape: tuple, image: np.ndarray,
                   target: int) -> np.ndarray:
    """d log p(target) / d pixel for one image: an array of ``image``'s shape, float32.

    ``layers``/``input_shape``: a :class:`~mnist_core.keras_numpy.KerasNumpyModel`'s. Its
    last layer must give probabilities: a softmax (of a Dense, Conv2D or Activation layer)
    is differentiated as a log-softmax; any other output as ``log(p + 1e-12)``.
    """
    x = np.asarray(image, np.float32).reshape(1, *input_shape)
    values = trace(layers, x)
    last, out = layers[-1], values[-1]
    p = _out(out)
    onehot = np.zeros_like(p)
    onehot[0, target] = 1.0
    if _activation(last) == "softmax":
        g, pre = onehot - p, True  # d log softmax(z)_t / dz
    else:
        g, pre = onehot / (p + 1e-12), False
    for i in range(len(layers) - 1, -1, -1):
        g = _backward(layers[i], _out(values[i]), values[i + 1], g,
                      grad_of_pre=pre and i == len(layers) - 1)
    return g.reshape(np.shape(image)).astype(np.float32)


def layer_outputs(layers: list[Layer], input_shape: tuple, image: np.ndarray
                  ) -> list[np.ndarray]:
    """Each layer's output for one image, batch axis dropped (float32)."""
    x = np.asarray(image, np.float32).reshape(1, *input_shape)
    return [_out(v)[0].astype(np.float32) for v in trace(layers, x)[1:]]


def hidden_activations(layers: list[Layer], input_shape: tuple, image: np.ndarray
                       ) -> list[np.ndarray]:
    """The output of every Dense layer but the last (after its activation), for one image."""
    outs = layer_outputs(layers, input_shape, image)
    dense = [i for i, layer in enumerate(layers) if layer.kind == "Dense"][:-1]
    return [outs[i] for i in dense]


def feature_maps(layers: list[Layer], input_shape: tuple, image: np.ndarray
                 ) -> list[tuple[str, np.ndarray]]:
    """Each Conv2D's output for one image, after the BatchNorm and activation layers that
    directly follow it (at most two): ``[(layer name, (channels, h, w) float32), ...]``."""
    outs = layer_outputs(layers, input_shape, image)
    maps = []
    for i, layer in enumerate(layers):
        if layer.kind != "Conv2D":
            continue
        tap = i
        for j in range(i + 1, min(i + 3, len(layers))):
            if layers[j].kind not in _AFTER_CONV:
                break
            tap = j
        maps.append((layer.config.get("name", f"conv2d_{len(maps)}"),
                     np.ascontiguousarray(np.transpose(outs[tap], (2, 0, 1)))))
    return maps

