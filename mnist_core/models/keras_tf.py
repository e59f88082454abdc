"""What only Keras itself (TensorFlow) does: the offline ``train`` command's networks.

The architecture comes from :mod:`.architectures` (one layer list per model), turned into
Keras's own config by :func:`mnist_core.engine.keras_file.model_config` and deserialized
here, so Keras and the NumPy engine build the same network from one definition. The app
and its workers never import this module (nor TensorFlow).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's chatter out of the CLI

import keras  # noqa: E402
import numpy as np  # noqa: E402

from ..engine import keras_file  # noqa: E402
from ..engine.network import Sequential  # noqa: E402


def build(arch) -> keras.Sequential:
    """A fresh ``keras.Sequential`` of ``arch`` (Keras draws its weights from its global
    seed, which the training loop sets)."""
    config = keras_file.model_config(Sequential(arch.layers(), arch.input_shape,
                                                arch.keras_name))
    return keras.saving.deserialize_keras_object(config)


def load(source: Path | bytes) -> keras.Model:
    """The ``keras.Model`` of a ``.keras`` file or its bytes (``safe_mode``: a file holding
    Python code is refused, never run)."""
    if isinstance(source, Path):
        return keras.models.load_model(source, compile=False, safe_mode=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        Path(path).write_bytes(source)
        return keras.models.load_model(path, compile=False, safe_mode=True)


def to_bytes(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")  # Keras saves only to a .keras path
        model.save(path)
        return Path(path).read_bytes()


def strip_optimizer(model: keras.Model) -> keras.Model:
    """An uncompiled copy with the same weights, so saved files hold no optimizer state."""
    # Not keras.models.clone_model: it recompiles the clone when the source is compiled,
    # and the saved file then carries the optimizer's config and variables.
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def fast_predict_fn(model: keras.Model):
    """A compiled ``(N, 28, 28) float32 -> (N, 10) float32`` function: ``model.predict``
    builds a dataset and a loop each call (~40 ms); a traced ``tf.function`` with a fixed
    signature costs well under a millisecond per drawing."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, 28, 28), tf.float32)],
                 reduce_retracing=True)
    def run(x):
        return model(x[..., None], training=False)

    def predict_proba(x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(-1, 28, 28)
        return np.concatenate([run(tf.constant(x[i:i + batch_size])).numpy()
                               for i in range(0, max(len(x), 1), batch_size)])

    predict_proba(np.zeros((1, 28, 28), np.float32))  # trace once, now, not on first stroke
    return predict_proba
