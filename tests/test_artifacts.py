"""Saving and loading artifacts: manifest hashes, damage detection, no optimizer, safe_mode."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import keras_optimizer_traces, run_cli, write_idx_folder

from mnist_core.artifacts.files import (MANIFEST, ArtifactError, load_gallery, load_model, load_models,
                                  read_manifest, sha256, write_manifest)
from mnist_core.datasets.data import to_float

REBUILD = "python -m mnist_core train"


@pytest.fixture
def artifacts_copy(tiny_artifacts, tmp_path):
    """A private copy of the session's tiny artifacts folder, free to damage."""
    return shutil.copytree(tiny_artifacts.directory, tmp_path / "artifacts")


def load_error(directory, names=None) -> str:
    """The error loading ``directory`` raises; it never shows where the server keeps it."""
    with pytest.raises(ArtifactError) as excinfo:
        load_models(directory, names)
    message = str(excinfo.value)
    assert str(directory) not in message and str(directory.parent) not in message, message
    return message


def rewrite(directory, filename: str, payload) -> None:
    """Replace ``filename`` with ``payload`` as JSON and re-hash the manifest, so only the
    shape of what is inside can be wrong."""
    (directory / filename).write_text(json.dumps(payload))
    write_manifest(directory, read_manifest(directory))


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
    assert f"artifacts/{filename} is damaged" in message  # named by its folder, not its path
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
    # Refused by the NumPy fast path's reader (it knows no Lambda layer) or by Keras's
    # safe_mode. (This once passed on "safe_mode" in pytest's folder name, in the path.)
    assert "lenet5.keras could not be loaded" in message
    assert "Lambda is not supported" in message or "safe_mode" in message


# ---------------------------------------------------------------------------------------
# Valid JSON of the wrong shape
# ---------------------------------------------------------------------------------------

def good_json(directory, filename):
    return json.loads((directory / filename).read_text())


HISTORY_DAMAGE = {
    # name: (change to the good history, what the message says)
    "a list": (lambda h: h["epochs"], "should be an object"),
    "epochs a string": (lambda h: {**h, "epochs": "x"}, "'epochs' should be a list"),
    "no epochs": (lambda h: {"model": "numpy"}, "'epochs' is missing"),
    "a row not an object": (lambda h: {**h, "epochs": [1, 2]}, "epochs[0] should be an object"),
    "val_accuracy a string": (
        lambda h: {**h, "epochs": [{**h["epochs"][0], "val_accuracy": "high"}]},
        "epochs[0]: 'val_accuracy' should be a number, not 'high'"),
    "a row without loss": (
        lambda h: {**h, "epochs": [{k: v for k, v in h["epochs"][0].items() if k != "loss"}]},
        "epochs[0]: 'loss' is missing"),
}

METRICS_DAMAGE = {
    "a list": (lambda m: [m], "should be an object"),
    "accuracy a word": (lambda m: {**m, "accuracy": "high"},
                        "'accuracy' should be a number from 0 to 1, not 'high'"),
    "accuracy over 1": (lambda m: {**m, "accuracy": 99.1},
                        "'accuracy' should be a number from 0 to 1"),
    "no loss": (lambda m: {k: v for k, v in m.items() if k != "loss"}, "'loss' is missing"),
    "confusion 9x10": (lambda m: {**m, "confusion": m["confusion"][:9]},
                       "'confusion' should be 10 rows of 10 counts"),
    "confusion of floats": (lambda m: {**m, "confusion": [[0.5] * 10] * 10},
                            "'confusion' should be 10 rows of 10 counts"),
    "precision short": (lambda m: {**m, "precision": m["precision"][:3]},
                        "'precision' should be 10 numbers"),
    "f1 a dict": (lambda m: {**m, "f1": {"0": 1.0}}, "'f1' should be 10 numbers"),
    "params a string": (lambda m: {**m, "params": "1M"}, "'params' should be a count"),
    "n negative": (lambda m: {**m, "n": -5}, "'n' should be a count"),
    "n true": (lambda m: {**m, "n": True}, "'n' should be a count"),
    "latency a string": (lambda m: {**m, "latency_single_ms": "fast"},
                         "'latency_single_ms' should be a number"),
}


@pytest.mark.parametrize("damage", HISTORY_DAMAGE)
def test_history_of_the_wrong_shape_names_the_file_and_the_problem(artifacts_copy, damage):
    change, problem = HISTORY_DAMAGE[damage]
    rewrite(artifacts_copy, "numpy.history.json",
            change(good_json(artifacts_copy, "numpy.history.json")))
    message = load_error(artifacts_copy, ["numpy"])
    assert "artifacts/numpy.history.json" in message and problem in message, message
    assert f"{REBUILD} --models numpy" in message


@pytest.mark.parametrize("damage", METRICS_DAMAGE)
def test_metrics_of_the_wrong_shape_name_the_file_and_the_problem(artifacts_copy, damage):
    change, problem = METRICS_DAMAGE[damage]
    rewrite(artifacts_copy, "lenet5.metrics.json",
            change(good_json(artifacts_copy, "lenet5.metrics.json")))
    message = load_error(artifacts_copy)
    assert "artifacts/lenet5.metrics.json" in message and problem in message, message
    assert f"{REBUILD} --models lenet5" in message


def test_optional_metrics_may_be_absent_or_null(artifacts_copy):
    metrics = good_json(artifacts_copy, "numpy.metrics.json")
    metrics.pop("params", None)
    rewrite(artifacts_copy, "numpy.metrics.json", {**metrics, "train_seconds": None})
    model = load_models(artifacts_copy, ["numpy"])["numpy"]
    assert "params" not in model.metrics and model.metrics["train_seconds"] is None


def test_the_cli_prints_one_error_line_for_a_history_of_the_wrong_shape(artifacts_copy, tmp_path,
                                                                         tiny_artifacts):
    rewrite(artifacts_copy, "numpy.history.json", {"epochs": "x"})
    data_dir = write_idx_folder(tmp_path / "data", tiny_artifacts.data)
    proc = run_cli("evaluate", "--artifacts", str(artifacts_copy), "--data", str(data_dir))
    assert proc.returncode == 2 and proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "artifacts/numpy.history.json" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and str(artifacts_copy) not in proc.stderr


@pytest.mark.parametrize("damage", ["missing", "damaged", "not listed", "unreadable"])
def test_no_error_shows_the_servers_folders(artifacts_copy, damage):
    path = artifacts_copy / "numpy.npz"
    if damage == "missing":
        path.unlink()
    elif damage == "damaged":
        path.write_bytes(path.read_bytes()[:-1])
    elif damage == "not listed":
        manifest = read_manifest(artifacts_copy)
        del manifest["files"]["numpy.npz"]
        (artifacts_copy / MANIFEST).write_text(json.dumps(manifest))
    else:
        rewrite(artifacts_copy, "numpy.npz", "not an archive")
    assert "artifacts/numpy.npz" in load_error(artifacts_copy, ["numpy"])  # checked inside


def test_a_missing_folder_is_named_by_its_name_only(tmp_path):
    message = load_error(tmp_path / "nowhere")
    assert "nowhere/manifest.json is missing" in message
