"""The engine's layers (mnist_core/engine/layers.py) and the network over them
(mnist_core/engine/network.py) against Keras itself: each layer kind on its own (outputs,
output shapes, configs), whole networks read from files Keras wrote (their predictions,
parameter counts and layer names), the folded inference copy, and the predict path's
batching and threads. The reader refuses layer types and settings it does not build."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS

from mnist_core.engine import keras_file
from mnist_core.engine.layers import INFER, LAYERS, Context
from mnist_core.engine.network import Sequential
from mnist_core.models.architectures import CNNConfig, DenseConfig, LeNet5Config
from mnist_core.models.model import KerasModel

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
from keras import layers  # noqa: E402

from mnist_core.models import keras_tf  # noqa: E402


def randomise_batchnorm(model, rng) -> None:
    """Fresh BatchNorm layers are the identity; random statistics make a test meaningful."""
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            w = layer.get_weights()
            shape = w[0].shape
            fresh = {"gamma": rng.uniform(0.5, 1.5, shape), "beta": rng.normal(0, 0.2, shape),
                     "moving_mean": rng.normal(0, 0.2, shape),
                     "moving_variance": rng.uniform(0.5, 2, shape)}
            layer.set_weights([fresh[v.path.split("/")[-1]] for v in layer.weights])


def read(model) -> Sequential:
    """The engine network of a Keras model, through the file Keras writes."""
    return keras_file.read(keras_tf.to_bytes(model))


def keras_files(model) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(keras_tf.to_bytes(model))) as z:
        return {n: z.read(n) for n in z.namelist()}


def zipped(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


# ---------------------------------------------------------------------------------------
# Each layer kind on its own, against the Keras layer with the same config and weights
# ---------------------------------------------------------------------------------------

LAYER_CASES = {
    "dense-linear": (lambda: layers.Dense(7), (12,)),
    "dense-relu-nobias": (lambda: layers.Dense(7, activation="relu", use_bias=False), (12,)),
    "dense-tanh": (lambda: layers.Dense(7, activation="tanh"), (12,)),
    "dense-sigmoid": (lambda: layers.Dense(7, activation="sigmoid"), (12,)),
    "dense-softmax": (lambda: layers.Dense(7, activation="softmax"), (12,)),
    "conv-valid": (lambda: layers.Conv2D(4, 3, activation="relu"), (9, 8, 2)),
    "conv-same-odd": (lambda: layers.Conv2D(4, 5, padding="same", activation="tanh"), (9, 8, 2)),
    "conv-same-even": (lambda: layers.Conv2D(3, 4, padding="same", use_bias=False), (9, 8, 2)),
    "conv-same-rect": (lambda: layers.Conv2D(3, (2, 3), padding="same",
                                             activation="sigmoid"), (7, 6, 3)),
    "batchnorm-4d": (lambda: layers.BatchNormalization(epsilon=1e-2), (5, 4, 3)),
    "batchnorm-2d": (lambda: layers.BatchNormalization(), (6,)),
    "batchnorm-noscale": (lambda: layers.BatchNormalization(scale=False), (6,)),
    "batchnorm-nocenter": (lambda: layers.BatchNormalization(center=False), (5, 4, 3)),
    "activation-relu": (lambda: layers.Activation("relu"), (5, 4, 3)),
    "activation-tanh": (lambda: layers.Activation("tanh"), (6,)),
    "activation-sigmoid": (lambda: layers.Activation("sigmoid"), (6,)),
    "activation-softmax": (lambda: layers.Activation("softmax"), (6,)),
    "activation-linear": (lambda: layers.Activation("linear"), (6,)),
    "relu": (lambda: layers.ReLU(), (5, 4, 3)),
    "maxpool-2": (lambda: layers.MaxPooling2D(), (9, 8, 3)),         # odd: a row dropped
    "maxpool-3x2": (lambda: layers.MaxPooling2D((3, 2)), (9, 7, 2)),
    "avgpool-2": (lambda: layers.AveragePooling2D(2), (7, 8, 3)),
    "avgpool-3x1": (lambda: layers.AveragePooling2D((3, 1)), (8, 5, 2)),
    "flatten": (lambda: layers.Flatten(), (4, 3, 2)),
    "dropout": (lambda: layers.Dropout(0.4), (6,)),
}


def keras_layer(case: str, seed: int = 0):
    """The Keras layer of ``case``, built on its input shape, every weight random (moving
    variances positive), and a random batch for it."""
    make, shape = LAYER_CASES[case]
    rng = np.random.default_rng(seed)
    layer = make()
    layer.build((None, *shape))
    weights = []
    for w in layer.weights:
        name = w.path.split("/")[-1]
        if name in ("moving_variance", "gamma"):
            weights.append(rng.uniform(0.5, 2.0, w.shape))
        else:
            weights.append(rng.normal(0, 0.5, w.shape))
    layer.set_weights([w.astype(np.float32) for w in weights])
    x = rng.normal(0, 1, (5, *shape)).astype(np.float32)
    # Ties in max pooling would make the test depend on nothing; normal floats have none.
    return layer, x


def engine_layer(klayer):
    cfg = klayer.get_config()
    mine = LAYERS[klayer.__class__.__name__].from_keras(cfg)
    mine.set_weights([np.asarray(w) for w in klayer.get_weights()])
    return mine


@pytest.mark.parametrize("case", LAYER_CASES)
def test_each_layer_computes_what_its_keras_layer_computes(case):
    klayer, x = keras_layer(case)
    mine = engine_layer(klayer)
    assert mine.kind == klayer.__class__.__name__
    expected = np.asarray(klayer(x, training=False))
    got = mine(x)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert mine.out_shape(x.shape[1:]) == tuple(klayer.compute_output_shape(x.shape))[1:]
    # Training mode: BatchNorm on the batch's statistics (Dropout is random in both).
    if mine.kind != "Dropout":
        train = np.asarray(klayer(x, training=True))
        np.testing.assert_allclose(mine.forward(x, Context(train=True))[0], train,
                                   rtol=1e-4, atol=1e-4)
    # float64 in, float64 out (the finite-difference tests run on it).
    assert mine(x.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize("case", LAYER_CASES)
def test_each_layer_config_is_the_one_keras_builds_from(case):
    """Keras's own layer, rebuilt from the engine layer's config, has the same settings:
    what the writer stores is what Keras reads back."""
    klayer, x = keras_layer(case)
    mine = engine_layer(klayer)
    cls = type(klayer)
    cfg = {"name": "probe", "trainable": True, "dtype": "float32", **mine.keras_config()}
    rebuilt = cls.from_config(cfg)
    ref = klayer.get_config()
    for key, value in rebuilt.get_config().items():
        if key in ("name", "dtype", "seed"):
            continue
        assert json.loads(json.dumps(value)) == json.loads(json.dumps(ref[key])), key
    rebuilt.build((None, *x.shape[1:]))
    rebuilt.set_weights(klayer.get_weights())
    np.testing.assert_allclose(rebuilt(x, training=False), klayer(x, training=False), atol=0)


def test_dropout_is_the_identity_at_inference_and_inverted_in_training():
    klayer, _ = keras_layer("dropout")
    mine = engine_layer(klayer)
    x = np.ones((400, 100), np.float32)
    assert mine(x) is x
    assert mine.forward(x, Context(train=True))[0] is x  # no rng: no masks
    y, mask = mine.forward(x, Context(train=True, rng=np.random.default_rng(0)))
    kept = y != 0
    assert abs(kept.mean() - 0.6) < 0.01 and np.allclose(y[kept], 1 / 0.6)
    assert np.array_equal(mine.backward(mask, x)[0], y)


# ---------------------------------------------------------------------------------------
# Whole networks from files Keras wrote
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", [DenseConfig(hidden=(64, 32)), CNNConfig(filters=(8, 16), dense=32),
                                  LeNet5Config()], ids=["dense", "cnn", "lenet5"])
def test_networks_keras_wrote_predict_like_keras(arch):
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    model = keras_tf.build(arch)
    randomise_batchnorm(model, rng)
    x = rng.random((37, 28, 28)).astype(np.float32)
    expected = model.predict(x[..., None], verbose=0)
    net = read(model)
    assert [layer.name for layer in net.layers] == [layer.name for layer in model.layers]
    for got in (net.predict_proba(x), net.folded().predict_proba(x),
                KerasModel.from_bytes(keras_tf.to_bytes(model)).predict_proba(x)):
        assert got.shape == (37, 10) and got.dtype == np.float32
        assert np.abs(got - expected).max() < 1e-5
    assert net.count_params() == model.count_params()


@pytest.mark.parametrize("name", ["dense", "cnn", "lenet5"])
def test_the_shipped_files_read_as_keras_loads_them(name):
    path = SHIPPED_ARTIFACTS / f"{name}.keras"
    model = keras.models.load_model(path, compile=False, safe_mode=True)
    net = keras_file.read(path)
    assert [layer.kind for layer in net.layers] == [l.__class__.__name__ for l in model.layers]
    assert [layer.name for layer in net.layers] == [l.name for l in model.layers]
    mine = [w for layer in net.layers for w in layer.weights]
    theirs = model.get_weights()
    assert len(mine) == len(theirs)
    assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))
    x = np.random.default_rng(3).random((50, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(net.folded().predict_proba(x),
                               model.predict(x[..., None], verbose=0), atol=1e-5)


def mixed_model():
    """Every layer kind: BatchNorm after a linear conv (folded) and after pooling (not
    foldable), separate activation layers (fused into the conv before them, or not),
    average and ragged max pooling, even and odd kernels, dense layers with and without a
    bias, dropout."""
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(6, 3, activation="relu"),                 # 26
        layers.MaxPooling2D(),                                  # 13
        layers.Conv2D(8, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.Activation("tanh"),
        layers.Conv2D(8, 4, padding="same", activation="sigmoid"),
        layers.MaxPooling2D(),                                  # 6, a row dropped
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Conv2D(12, 3, padding="same"),
        layers.Conv2D(12, 3, padding="same", activation="relu"),
        layers.AveragePooling2D(2),                             # 3
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(16, use_bias=False),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.Dense(10, activation="softmax"),
    ])


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(1)
    model = mixed_model()
    randomise_batchnorm(model, rng)
    x = rng.random((300, 28, 28)).astype(np.float32)
    return read(model), x, model.predict(x[..., None], verbose=0, batch_size=300)


def test_every_layer_kind_predicts_like_keras(mixed):
    net, x, expected = mixed
    assert {layer.kind for layer in net.layers} == set(LAYERS)
    for got in (net.predict_proba(x), net.folded().predict_proba(x)):
        assert got.shape == (300, 10) and got.dtype == np.float32
        assert np.abs(got - expected).max() < 1e-5


def test_folding_removes_batchnorms_and_activation_layers_it_can(mixed):
    net, x, _ = mixed
    folded = net.folded()
    kinds = [layer.kind for layer in folded.layers]
    # Conv+BN+tanh -> one conv; the BN after pooling and its ReLU stay; Dense+BN+ReLU -> one.
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "Conv2D", "MaxPooling2D",
                     "BatchNormalization", "ReLU", "Conv2D", "Conv2D", "AveragePooling2D",
                     "Flatten", "Dropout", "Dense", "Dense"]
    assert folded.count_params() < net.count_params()
    # The network folded from is untouched.
    assert [layer.kind for layer in net.layers].count("BatchNormalization") == 3
    assert net.layers[2].bias is None and net.layers[2].activation == "linear"
    np.testing.assert_allclose(folded.predict_proba(x[:20]), net.predict_proba(x[:20]),
                               atol=1e-6)


def test_layer_by_layer_forward_and_trace_match_the_predict_path(mixed):
    net, x, _ = mixed
    h = x[:20, ..., None]
    for layer in net.layers:
        h = layer(h)
    np.testing.assert_allclose(h, net.predict_proba(x[:20]), atol=1e-6)
    y, caches = net.forward(net.batch(x[:20]))
    assert len(caches) == len(net.layers)
    np.testing.assert_array_equal(y, h)
    outs = net.trace(x[0])
    assert [o.shape for o in outs] == [tuple(s) for s in net.shapes()[1:]]
    np.testing.assert_allclose(outs[-1], h[0], atol=1e-6)


def test_batches_chunks_and_threads_give_the_same_answers(mixed):
    net, x, _ = mixed
    whole = net.predict_proba(x)
    one_by_one = np.concatenate([net.predict_proba(x[i:i + 1]) for i in range(0, 300, 29)])
    np.testing.assert_allclose(one_by_one, whole[::29], atol=1e-6)
    threads, features = net.predict_with_features(x, batch_size=7, workers=2)
    np.testing.assert_allclose(threads, whole, atol=1e-6)
    single, feats1 = net.predict_with_features(x, batch_size=7, workers=1)
    np.testing.assert_array_equal(single, threads)  # batches are independent of threads
    np.testing.assert_array_equal(feats1, features)
    assert features.shape == (300, 16)  # what the last Dense reads
    # Convolutions in chunks of a few images give the same outputs.
    small = Context(chunk_bytes=20_000)
    y_small, _ = net.forward(net.batch(x[:30]), small)
    y_big, _ = net.forward(net.batch(x[:30]), INFER)
    np.testing.assert_allclose(y_small, y_big, atol=1e-6)
    empty, empty_features = net.predict_with_features(x[:0])
    assert empty.shape == (0, 10) and empty_features.shape[0] == 0


def test_predictions_are_never_a_view_of_a_work_array(mixed):
    net, x, _ = mixed
    for engine in (net, net.folded()):
        for n, batch in ((1, 256), (40, 256), (40, 16)):
            p, features = engine.predict_with_features(x[:n], batch_size=batch)
            kept, kept_features = p.copy(), features.copy()
            assert p.base is None and features.base is None
            assert not np.shares_memory(p, x) and not np.shares_memory(features, x)
            engine.predict_with_features(x[100:100 + n][::-1], batch_size=batch)  # reuses nothing
            np.testing.assert_array_equal(p, kept)
            np.testing.assert_array_equal(features, kept_features)


def test_odd_shapes_and_repeated_passes_match_keras():
    """Two "same" convs of different kernels on the same padded size, a valid conv between:
    the second pass gives the first pass's answers."""
    keras.utils.set_random_seed(2)
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.MaxPooling2D(),                          # 14x14x1
        layers.Conv2D(1, 3, padding="same"),
        layers.Conv2D(1, 3, activation="tanh"),         # 12x12x1
        layers.Conv2D(1, 5, padding="same"),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])
    x = np.random.default_rng(2).random((9, 28, 28)).astype(np.float32)
    net = read(model)
    first = net.predict_proba(x)
    second = net.predict_proba(x)
    np.testing.assert_array_equal(first, second)
    assert np.abs(second - model.predict(x[..., None], verbose=0)).max() < 1e-5


# ---------------------------------------------------------------------------------------
# What the reader refuses
# ---------------------------------------------------------------------------------------

def test_unknown_layers_are_refused_not_run():
    keras.utils.set_random_seed(0)
    files = keras_files(keras_tf.build(LeNet5Config()))
    config = json.loads(files["config.json"])
    config["config"]["layers"][1]["class_name"] = "Lambda"
    files["config.json"] = json.dumps(config).encode()
    with pytest.raises(ValueError, match="Lambda"):
        keras_file.read(zipped(files))
    with pytest.raises(ValueError, match="Lambda"):
        KerasModel.from_bytes(zipped(files))


def test_a_functional_model_and_damaged_files_are_refused():
    inputs = keras.Input(shape=(28, 28, 1))
    functional = keras.Model(inputs, layers.Dense(10)(layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="Sequential"):
        keras_file.read(keras_tf.to_bytes(functional))
    with pytest.raises(ValueError, match="not a readable"):
        keras_file.read(b"not a zip")
    keras.utils.set_random_seed(0)
    files = keras_files(keras_tf.build(LeNet5Config()))
    files.pop("config.json")
    with pytest.raises(ValueError, match="not a readable"):
        keras_file.read(zipped(files))


@pytest.mark.parametrize("layer, match", [
    (lambda: layers.Conv2D(4, 3, dilation_rate=2), "undilated"),
    (lambda: layers.Conv2D(4, 3, strides=2), "stride-1"),
    (lambda: layers.MaxPooling2D(2, strides=1), "non-overlapping"),
    (lambda: layers.AveragePooling2D(2, padding="same"), "non-overlapping"),
    (lambda: layers.ReLU(max_value=6.0), "plain ReLU"),
    (lambda: layers.Dropout(0.2, noise_shape=(None, 1, 1, 1)), "noise_shape"),
    (lambda: layers.Activation("elu"), "elu"),
], ids=["dilated", "strided", "overlapping-pool", "same-pool", "relu6", "noise-shape", "elu"])
def test_unsupported_settings_are_refused_at_load(layer, match):
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), layer(), layers.Flatten(),
                              layers.Dense(10)])
    with pytest.raises(ValueError, match=match):
        keras_file.read(keras_tf.to_bytes(model))


def test_weights_of_the_wrong_shape_are_refused():
    keras.utils.set_random_seed(0)
    small = keras_files(keras_tf.build(LeNet5Config(filters=(3, 4))))
    big = keras_files(keras_tf.build(LeNet5Config()))
    small["model.weights.h5"] = big["model.weights.h5"]
    with pytest.raises(ValueError, match="shape"):
        keras_file.read(zipped(small))


@pytest.mark.parametrize("axis, shape, accepted", [
    (1, (8, 8, 8), False),   # the rows of a map with as many rows as channels
    (2, (8, 8, 8), False),
    (3, (8, 8, 8), True),    # the channels, named by number
    (1, (8,), True),         # a vector's last axis
], ids=["rows", "columns", "channels", "vector"])
def test_batchnorm_over_another_axis_than_the_last_is_refused(axis, shape, accepted):
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input(shape=shape), layers.BatchNormalization(axis=axis),
                              layers.Flatten(), layers.Dense(10, activation="softmax")])
    randomise_batchnorm(model, rng)
    blob = keras_tf.to_bytes(model)
    if not accepted:
        with pytest.raises(ValueError, match="last axis"):
            keras_file.read(blob)
        return
    x = rng.random((4, *shape)).astype(np.float32)
    np.testing.assert_allclose(keras_file.read(blob).predict_proba(x),
                               model.predict(x, verbose=0), atol=1e-5)
