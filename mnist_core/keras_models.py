"""Keras model builders: small functions returning a literal ``keras.Sequential``.

Every model takes ``(N, 28, 28, 1) float32 in [0, 1]`` and returns ``(N, 10)`` softmax
probabilities. Their configs live in :mod:`mnist_core.architectures` (TensorFlow-free) and
are re-exported here. Imported lazily: the NumPy model's code path never loads TensorFlow.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of CLI output

import keras  # noqa: E402
from keras import layers  # noqa: E402

from .architectures import CNNConfig, DenseConfig, LeNet5Config  # noqa: E402  (re-exported)


def build_dense(cfg: DenseConfig = DenseConfig()) -> keras.Sequential:
    """Multilayer perceptron: Flatten -> [Dense + ReLU + Dropout] x n -> softmax."""
    blocks = []
    for units in cfg.hidden:
        blocks += [layers.Dense(units, activation="relu"), layers.Dropout(cfg.dropout)]
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Flatten(),
        *blocks,
        layers.Dense(10, activation="softmax"),
    ], name="dense")


def build_cnn(cfg: CNNConfig = CNNConfig()) -> keras.Sequential:
    """Two conv blocks (each two convs with BatchNorm) then a dropout-regularised classifier.

    The first conv in each block is 5x5 for reach, the second 3x3 for depth at low cost;
    stride-2 pooling halves the grid twice (28 -> 14 -> 7).
    """
    f1, f2 = cfg.filters
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(f1, 5, padding="same", use_bias=False),
        layers.BatchNormalization(momentum=cfg.bn_momentum),
        layers.ReLU(),
        layers.MaxPooling2D(),
        layers.Conv2D(f2, 3, padding="same", use_bias=False),
        layers.BatchNormalization(momentum=cfg.bn_momentum),
        layers.ReLU(),
        layers.Conv2D(f2, 3, padding="same", use_bias=False),
        layers.BatchNormalization(momentum=cfg.bn_momentum),
        layers.ReLU(),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dropout(cfg.dropout),
        layers.Dense(cfg.dense, use_bias=False),
        layers.BatchNormalization(momentum=cfg.bn_momentum),
        layers.ReLU(),
        layers.Dropout(cfg.dropout),
        layers.Dense(10, activation="softmax"),
    ], name="cnn")


def build_lenet5(cfg: LeNet5Config = LeNet5Config()) -> keras.Sequential:
    """LeNet-5 (LeCun et al. 1998) with its 6-16-120-84 shape and tanh, max-pooling."""
    c1, c3 = cfg.filters
    c5, f6 = cfg.dense
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(c1, 5, padding="same", activation=cfg.activation),
        layers.MaxPooling2D(),
        layers.Conv2D(c3, 5, activation=cfg.activation),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(c5, activation=cfg.activation),
        layers.Dense(f6, activation=cfg.activation),
        layers.Dense(10, activation="softmax"),
    ], name="lenet5")


def strip_optimizer(model: keras.Model) -> keras.Model:
    """An uncompiled copy with the same weights, so saved files hold no optimizer state."""
    # Not keras.models.clone_model: it recompiles the clone when the source is compiled,
    # and the saved file then carries the optimizer's config and variables.
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def fast_predict_fn(model: keras.Model):
    """A compiled ``(N, 28, 28) float32 -> (N, 10) float32`` function for interactive use.

    ``model.predict`` builds a dataset and spins up a loop each call (~40 ms); a traced
    ``tf.function`` with a fixed signature costs well under a millisecond per drawing.
    """
    import numpy as np
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, 28, 28), tf.float32)],
                 reduce_retracing=True)
    def run(x):
        return model(x[..., None], training=False)

    def predict_proba(x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(-1, 28, 28)
        if len(x) <= batch_size:
            return run(tf.constant(x)).numpy()
        return np.concatenate([run(tf.constant(x[i:i + batch_size])).numpy()
                               for i in range(0, len(x), batch_size)])

    predict_proba(np.zeros((1, 28, 28), np.float32))  # trace once, now, not on first stroke
    return predict_proba
