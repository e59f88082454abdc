"""The one model interface: gradients, files, families, relabelling; the registry's
architectures; rebuilding every shipped model from its manifest alone."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import REPO, SHIPPED_ARTIFACTS

from mnist_core.engine import keras_file
from mnist_core.engine.layers import Dense, Dropout
from mnist_core.models.architectures import (ARCHITECTURES, CNNConfig, DenseConfig, LeNet5Config,
                                             NumpyConfig, build_net, from_manifest, to_manifest)
from mnist_core.models.model import KerasModel, Model, NumpyModel
from mnist_core.artifacts.registry import REGISTRY

TINY = {  # registry model -> a tiny architecture of its kind
    "numpy": NumpyConfig(hidden=(16,), dropout=0.0),
    "dense": DenseConfig(hidden=(16,), dropout=0.1),
    "cnn": CNNConfig(filters=(4, 8), dense=16, bn_momentum=0.9),
    "lenet5": LeNet5Config(filters=(2, 4), dense=(12, 8)),
}


def random_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((28, 28)).astype(np.float32)


def log_p(model: Model, x: np.ndarray, target: int) -> float:
    return float(np.log(model.predict_proba(x[None].astype(np.float32))[0, target]))


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["numpy", "dense"])
def test_input_gradient_matches_finite_differences(name):
    """By hand (NumPy) and by GradientTape (Keras), against central differences of the
    fast path's log-probability (a network without max-pooling, whose kinks a finite step
    can cross)."""
    if REGISTRY[name].backend is KerasModel:
        import keras
        keras.utils.set_random_seed(0)  # Keras draws initial weights from its global seed
    model = REGISTRY[name].build(TINY[name])
    img, target, eps = random_image(), 3, 1e-2
    grad = model.input_gradient(img, target)
    assert grad.shape == (28, 28) and grad.dtype == np.float32
    for r, c in [(5, 5), (14, 14), (20, 3), (9, 22)]:
        up, down = img.copy(), img.copy()
        up[r, c] += eps
        down[r, c] -= eps
        numeric = (log_p(model, up, target) - log_p(model, down, target)) / (2 * eps)
        assert grad[r, c] == pytest.approx(numeric, rel=0.05, abs=1e-4), (r, c)


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(TINY))
def test_to_bytes_round_trips_through_load(tmp_path, name):
    spec = REGISTRY[name]
    model = spec.build(TINY[name])
    data = model.to_bytes()
    path = tmp_path / f"mine{spec.backend.file_ext}"
    path.write_bytes(data)
    loaded = spec.backend.load(path, spec, arch=TINY[name])
    assert type(loaded) is type(model) and loaded.name == name and loaded.arch == TINY[name]
    x = np.random.default_rng(1).random((9, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.count_params() == model.count_params() == model.network.count_params()
    assert loaded.to_bytes() == data
    assert model.save(tmp_path / "again").read_bytes() == data


def test_keras_fast_path_matches_the_real_network():
    spec = REGISTRY["cnn"]
    model = spec.backend.from_bytes(spec.build(TINY["cnn"]).to_bytes(), spec)  # a file
    x = np.random.default_rng(2).random((5, 28, 28)).astype(np.float32)
    np.testing.assert_allclose(model.predict_proba(x),
                               model.keras_net.predict(x[..., None], verbose=0), atol=1e-5)
    assert model.slow_predict_fn()(x).shape == (5, 10)
    # Built (or trained) in NumPy, in a process that keeps TensorFlow out: nothing to time.
    assert spec.build(TINY["cnn"]).slow_predict_fn() is None
    assert REGISTRY["numpy"].build(TINY["numpy"]).slow_predict_fn() is None


def test_keras_file_from_a_trained_network_holds_no_optimizer(tiny_keras_result, tmp_path):
    from conftest import keras_optimizer_traces

    spec = REGISTRY["lenet5"]
    model = spec.backend.from_net(tiny_keras_result.model, spec)
    path = model.save(tmp_path / "lenet5.keras")
    assert keras_optimizer_traces(path) == []
    assert tiny_keras_result.model.optimizer is not None  # the trained one keeps its own


# ---------------------------------------------------------------------------------------
# Families, relabelling
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, family", [("numpy", "mlp"), ("dense", "mlp"),
                                          ("cnn", "conv"), ("lenet5", "conv")])
def test_each_family_shows_its_own_views(name, family):
    model = REGISTRY[name].build(TINY[name])
    img = random_image(3)
    assert model.family == family
    if family == "mlp":
        hidden = TINY[name].hidden
        templates = model.first_layer_templates(5)
        assert templates.shape == (5, 28, 28) and templates.dtype == np.float32
        assert [a.shape for a in model.hidden_activations(img)] == [(u,) for u in hidden]
        with pytest.raises(TypeError, match="'mlp' network"):
            model.conv_filters()
        with pytest.raises(TypeError, match="'mlp' network"):
            model.feature_maps(img)
    else:
        first = TINY[name].filters[0]
        assert model.conv_filters(0).shape == (first, 5, 5)
        maps = model.feature_maps(img)
        assert maps[0][1].shape == (first, 28, 28) and all(m.dtype == np.float32 for _, m in maps)
        with pytest.raises(TypeError, match="'conv' network"):
            model.first_layer_templates()
        with pytest.raises(TypeError, match="'conv' network"):
            model.hidden_activations(img)


def test_renamed_shares_the_network_not_the_metrics():
    model = REGISTRY["numpy"].build(TINY["numpy"])
    model.metrics["accuracy"] = 0.5
    mine = model.renamed("yours", "Your model")
    assert (mine.name, mine.title, model.name, model.title) == ("yours", "Your model", "numpy",
                                                                 "NumPy MLP")
    assert mine.network is model.network and mine.views == model.views and mine.arch == model.arch
    mine.metrics["settings"] = {"lr": 1}
    assert "settings" not in model.metrics and mine.metrics["accuracy"] == 0.5
    assert isinstance(mine, NumpyModel)


def test_importing_the_interface_loads_no_tensorflow():
    code = ("import sys, mnist_core.models.model, mnist_core.artifacts.registry, mnist_core.models.architectures, "
            "mnist_core.package, mnist_core.worker, mnist_core.insight.explain, "
            "mnist_core.artifacts.files; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------
# Registry and architectures
# ---------------------------------------------------------------------------------------

def test_every_spec_holds_full_architectures_of_its_backend():
    for name, spec in REGISTRY.items():
        assert issubclass(spec.backend, Model) and spec.backend in (NumpyModel, KerasModel)
        for arch in (spec.arch, spec.live_arch):
            assert type(arch).__name__ in ARCHITECTURES
            assert from_manifest(json.loads(json.dumps(to_manifest(arch)))) == arch
        assert spec.filename == name + spec.backend.file_ext
    # What Train live hard-coded before the registry held it.
    assert REGISTRY["numpy"].live_arch.dropout == 0.0
    assert REGISTRY["cnn"].live_arch.bn_momentum == 0.9


def test_from_manifest_refuses_unknown_types_and_fields():
    assert from_manifest(None) is None
    assert from_manifest({"hidden": [800, 800]}) is None  # recorded before types were
    with pytest.raises(ValueError, match="unknown architecture type 'ResNet'"):
        from_manifest({"type": "ResNet"})
    with pytest.raises(ValueError, match="no field"):
        from_manifest({"type": "DenseConfig", "hidden": [8], "kernel": 3})


def _keras_layers(config: dict) -> list[tuple]:
    """Layer types and shapes of a Keras config, without names or initialiser seeds."""
    keys = ("units", "filters", "kernel_size", "activation", "padding", "use_bias", "rate",
            "momentum", "pool_size")
    return [(layer["class_name"], {k: layer["config"].get(k) for k in keys})
            for layer in config["config"]["layers"]]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_shipped_models_rebuild_from_the_manifest_alone(name):
    manifest = json.loads((SHIPPED_ARTIFACTS / "manifest.json").read_text())
    arch = from_manifest(manifest["models"][name]["arch"])
    assert arch == REGISTRY[name].arch
    net = build_net(arch)
    path = SHIPPED_ARTIFACTS / manifest["models"][name]["file"]
    shipped = REGISTRY[name].backend.load(path, REGISTRY[name])
    assert net.count_params() == shipped.count_params()
    if isinstance(shipped, KerasModel):  # the file Keras wrote, against the layer list's
        with zipfile.ZipFile(path) as f:
            assert _keras_layers(json.loads(f.read("config.json"))) == \
                _keras_layers(json.loads(json.dumps(keras_file.model_config(net))))
    else:
        def shape(network):
            return ([(d.kernel.shape, d.activation) for d in network.of_kind(Dense)],
                    [d.rate for d in network.of_kind(Dropout)])
        assert shape(net) == shape(shipped.network)
