"""Saving and loading artifacts: manifest hashes, damage detection, no optimizer, safe_mode."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import keras_optimizer_traces

from mnist_core.artifacts import (MANIFEST, ArtifactError, load_gallery, load_model, load_models,
                                  read_manifest, sha256, write_manifest)
from mnist_core.data import to_float

REBUILD = "python -m mnist_core train"


@pytest.fixture
def artifacts_copy(tiny_artifacts, tmp_path):
    """A private copy of the session's tiny artifacts folder, free to damage."""
    return shutil.copytree(tiny_artifacts.directory, tmp_path / "artifacts")


def load_error(directory, names=None) -> str:
    with pytest.raises(ArtifactError) as excinfo:
        load_models(directory, names)
    return str(excinfo.value)


# ---------------------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------------------

def test_load_models_matches_in_memory_models(tiny_artifacts):
    models = load_models(tiny_artifacts.directory)
    assert list(models) == ["numpy", "lenet5"]  # registry order
    x = to_float(tiny_artifacts.data.x_test[:40])
    np.testing.assert_array_equal(models["numpy"].predict_proba(x),
                                  tiny_artifacts.nets["numpy"].predict_proba(x))
    expected = tiny_artifacts.nets["lenet5"].predict(x[..., None], verbose=0)
    np.testing.assert_allclose(models["lenet5"].predict_proba(x), expected, atol=1e-5)
    for name, model in models.items():
        assert model.name == name and model.kind == ("numpy" if name == "numpy" else "keras")
        assert model.metrics["model"] == name and 0 <= model.metrics["accuracy"] <= 1
        assert len(model.history) >= 1 and "val_accuracy" in model.history[0]


def test_load_selected_and_unknown_models(tiny_artifacts):
    assert list(load_models(tiny_artifacts.directory, ["numpy"])) == ["numpy"]
    message = load_error(tiny_artifacts.directory, ["cnn"])
    assert "'cnn' is not in" in message and f"{REBUILD} --models cnn" in message
    with pytest.raises(ArtifactError, match="unknown model 'resnet'"):
        load_model("resnet", tiny_artifacts.directory)


def test_manifest_hashes_every_file(tiny_artifacts):
    directory = tiny_artifacts.directory
    manifest = read_manifest(directory)
    on_disk = {p.name for p in directory.iterdir() if p.name != MANIFEST}
    assert set(manifest["files"]) == on_disk
    for name, digest in manifest["files"].items():
        assert sha256(directory / name) == digest
    assert manifest["dataset"] == "mnist" and "numpy" in manifest["versions"]


def test_write_manifest_skips_dotfiles_and_itself(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / ".hidden").write_text("x")
    write_manifest(tmp_path, {"models": {}})
    write_manifest(tmp_path, {"models": {}, "note": "again"})
    manifest = read_manifest(tmp_path)
    assert list(manifest["files"]) == ["a.json"] and manifest["note"] == "again"


def test_gallery_round_trip(artifacts_copy):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    np.savez_compressed(artifacts_copy / "gallery.npz", images=images,
                        labels=np.array([1, 2, 3], np.uint8), index=np.array([5, 9, 12]),
                        sample=np.array([True, False, True]),
                        pred_numpy=np.array([1, 7, 3], np.uint8))
    write_manifest(artifacts_copy, read_manifest(artifacts_copy))
    gallery = load_gallery(artifacts_copy)
    np.testing.assert_array_equal(gallery.images, images)
    assert gallery.index.tolist() == [5, 9, 12] and gallery.sample.tolist() == [True, False, True]
    assert list(gallery.preds) == ["numpy"] and gallery.preds["numpy"].tolist() == [1, 7, 3]


# ---------------------------------------------------------------------------------------
# Damage
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("filename, model", [("numpy.npz", "numpy"), ("lenet5.keras", "lenet5"),
                                             ("lenet5.metrics.json", "lenet5")])
def test_flipped_byte_is_reported_as_damaged(artifacts_copy, filename, model):
    path = artifacts_copy / filename
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    message = load_error(artifacts_copy)
    assert str(path) in message and "damaged" in message
    assert f"{REBUILD} --models {model}" in message


def test_missing_weights_file(artifacts_copy):
    (artifacts_copy / "lenet5.keras").unlink()
    message = load_error(artifacts_copy)
    assert "lenet5.keras is missing" in message and f"{REBUILD} --models lenet5" in message


def test_missing_history_file(artifacts_copy):
    (artifacts_copy / "numpy.history.json").unlink()
    assert "numpy.history.json is missing" in load_error(artifacts_copy, ["numpy"])


def test_file_not_in_manifest(artifacts_copy):
    manifest = json.loads((artifacts_copy / MANIFEST).read_text())
    del manifest["files"]["numpy.npz"]
    (artifacts_copy / MANIFEST).write_text(json.dumps(manifest))
    assert "numpy.npz is not listed in manifest.json" in load_error(artifacts_copy, ["numpy"])


def test_missing_manifest(artifacts_copy):
    (artifacts_copy / MANIFEST).unlink()
    message = load_error(artifacts_copy)
    assert "manifest.json is missing" in message and REBUILD in message


@pytest.mark.parametrize("text, problem", [('{"files": {"numpy.npz": ', "damaged"),
                                           ("[1, 2, 3]", "no 'files' table"),
                                           ('{"models": {}}', "no 'files' table")])
def test_garbled_manifest(artifacts_copy, text, problem):
    (artifacts_copy / MANIFEST).write_text(text)
    message = load_error(artifacts_copy)
    assert "manifest.json" in message and problem in message and REBUILD in message


def test_unreadable_weights_with_matching_hash(artifacts_copy):
    (artifacts_copy / "numpy.npz").write_bytes(b"not an npz archive")
    write_manifest(artifacts_copy, read_manifest(artifacts_copy))  # hash now matches
    message = load_error(artifacts_copy, ["numpy"])
    assert "numpy.npz could not be loaded" in message and f"{REBUILD} --models numpy" in message


# ---------------------------------------------------------------------------------------
# Keras specifics
# ---------------------------------------------------------------------------------------

def test_keras_file_holds_no_optimizer(tiny_artifacts):
    import keras

    path = tiny_artifacts.directory / "lenet5.keras"
    assert keras_optimizer_traces(path) == []
    # Even loading with compile=True finds nothing to compile.
    assert getattr(keras.models.load_model(path), "optimizer", None) is None
    assert tiny_artifacts.nets["lenet5"].optimizer is not None  # the trained one had one


def test_loading_uses_safe_mode(artifacts_copy):
    """A .keras file smuggling a Python lambda is refused, not executed."""
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: x * 2),
                              keras.layers.Flatten(), keras.layers.Dense(10, "softmax")])
    model.save(artifacts_copy / "lenet5.keras")
    write_manifest(artifacts_copy, read_manifest(artifacts_copy))
    message = load_error(artifacts_copy, ["lenet5"])
    assert "lenet5.keras could not be loaded" in message and "safe_mode" in message
