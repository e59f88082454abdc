"""The layers every network here is made of, each written once in NumPy.

One class per layer kind (:mod:`.linear`: Dense, Conv2D; :mod:`.norm`: BatchNormalization;
:mod:`.shape`: activations, pooling, Flatten, Dropout; :mod:`.base`: what they share), in
the spirit of micrograd: a layer holds its hyperparameters
and weights, and gives, side by side, its forward pass (inference and training), its
backward pass (input and weight gradients), its output shape, its weights' initial
values, its Keras config and its ONNX nodes. :class:`~mnist_core.engine.network.Sequential`
runs a list of them; :mod:`~mnist_core.engine.keras_file` reads and writes them as a
``.keras`` file (building only the kinds in :data:`LAYERS`: a file never runs code);
:mod:`~mnist_core.engine.onnx_graph` emits a graph layer by layer.

Shapes are channels-last, batch first: images ``(N, H, W, C)``, vectors ``(N, D)``.
Every function keeps its input's dtype (float32 in the app, float64 in the
finite-difference tests). Semantics are Keras's (tests hold each layer to Keras and
GradientTape): TensorFlow's "same" padding puts the odd pixel after; max pooling's
gradient goes to the first maximum of each window; BatchNormalization normalises by the
batch's biased variance in training.

Adding a layer kind: subclass :class:`Layer`, set ``kind`` to its Keras class name, write
``forward``/``backward``/``out_shape`` (and ``init``, ``keras_config``, ``from_keras``,
``onnx`` where it has weights or settings), and add it to :data:`LAYERS`.
"""

from .base import ACTIVATIONS, INFER, Context, Layer, glorot_uniform, softmax
from .linear import Conv2D, Dense, Linear
from .norm import BatchNormalization
from .shape import Activation, AveragePooling2D, Dropout, Flatten, MaxPooling2D, ReLU

__all__ = ["ACTIVATIONS", "INFER", "LAYERS", "Activation", "AveragePooling2D",
           "BatchNormalization", "Context", "Conv2D", "Dense", "Dropout", "Flatten", "Layer",
           "Linear", "MaxPooling2D", "ReLU", "glorot_uniform", "softmax"]

# The layer kinds a file may name: nothing else is ever built from a config.
LAYERS: dict[str, type[Layer]] = {cls.kind: cls for cls in (
    Dense, Conv2D, BatchNormalization, Activation, ReLU, MaxPooling2D, AveragePooling2D,
    Flatten, Dropout)}
