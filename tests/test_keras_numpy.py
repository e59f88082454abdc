"""The NumPy evaluation of saved Keras models matches Keras itself."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mnist_core import keras_models as km  # noqa: E402
from mnist_core.keras_numpy import KerasNumpyModel  # noqa: E402


def _randomise_batchnorm(model, rng):
    # Fresh BatchNorm layers are the identity; random statistics make the test meaningful.
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2, var.shape)])


@pytest.mark.parametrize("build", [lambda: km.build_dense(km.DenseConfig(hidden=(64, 32))),
                                   lambda: km.build_cnn(km.CNNConfig(filters=(8, 16), dense=32)),
                                   km.build_lenet5],
                         ids=["dense", "cnn", "lenet5"])
def test_numpy_forward_matches_keras(tmp_path, build):
    rng = np.random.default_rng(0)
    model = build()
    _randomise_batchnorm(model, rng)
    path = tmp_path / "m.keras"
    model.save(path)
    x = rng.random((37, 28, 28)).astype(np.float32)
    expected = model.predict(x[..., None], verbose=0)
    fast = KerasNumpyModel.load(path)
    got = fast.predict_proba(x)
    assert got.shape == (37, 10) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    assert fast.count_params() == model.count_params()


def test_unknown_layers_are_refused_not_run(tmp_path):
    path = tmp_path / "m.keras"
    km.build_lenet5().save(path)
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    config = json.loads(files["config.json"])
    config["config"]["layers"][1]["class_name"] = "Lambda"
    files["config.json"] = json.dumps(config).encode()
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match="Lambda"):
        KerasNumpyModel.load(bad)
