"""Model maps (mnist_core/embedding.py): last-hidden-layer features, placing new digits,
the map files (written after training and by the CLI) and their errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS

import app_helpers as h
from mnist_core.insight import embedding
from mnist_core.artifacts.files import ArtifactError, load_models, read_manifest, write_manifest
from mnist_core.cli import main
from mnist_core.datasets.data import load_dataset, to_float
from mnist_core.engine.layers import Dense, softmax


def own_cluster_share(m: embedding.ModelMap, placed: np.ndarray, labels: np.ndarray,
                      k: int = 15) -> float:
    """Share of ``placed`` points whose ``k`` nearest map points are mostly of their label."""
    hits = 0
    for p, y in zip(placed, labels):
        near = np.argsort(((m.coords - p) ** 2).sum(1))[:k]
        hits += int(np.bincount(m.labels[near], minlength=10).argmax() == y)
    return hits / len(labels)


# ---------------------------------------------------------------------------------------
# Features and placing
# ---------------------------------------------------------------------------------------

def test_embedding_features_are_what_the_output_layer_reads(models):
    x = to_float(h.small_dataset().x_test[:16])
    for name, model in models.items():
        feats = model.embedding_features(x)
        assert feats.dtype == np.float32 and feats.ndim == 2 and len(feats) == 16
        w, b = model.network.of_kind(Dense)[-1].weights
        logits = (feats @ w + b) / getattr(model, "temperature", 1.0)
        np.testing.assert_allclose(softmax(logits), model.predict_proba(x), atol=2e-5)


def test_weights_reach_the_perplexity():
    d2 = np.random.default_rng(0).random(15) * 40
    w = embedding._weights(d2, 5.0, 50, 1e-6)
    assert w.sum() == pytest.approx(1.0)
    assert np.exp(-(w * np.log(w)).sum()) == pytest.approx(5.0, rel=1e-3)
    assert w[d2.argmin()] == w.max()  # the nearest weighs most


def test_fixture_maps_place_training_digits_in_their_own_cluster(models, artifacts):
    """The maps written after training (train_and_package's hook), read back: held-out
    training digits land among their own class; a mapped digit lands on itself."""
    data = h.small_dataset()
    maps, digits = embedding.load_maps(artifacts, list(models))
    assert (digits == data.x_test).all()
    x, y = to_float(data.x_train[:200]), data.y_train[:200]
    for name, model in models.items():
        m = maps[name]
        assert (m.labels == data.y_test).all()
        placed = m.place_images(model, x)
        assert placed.shape == (200, 2) and placed.dtype == np.float32
        share = own_cluster_share(m, placed, y)
        right = (model.predict_proba(x).argmax(1) == y).mean()
        assert share >= min(0.9, right - 0.05), (name, share, right)
        self_placed = m.place_images(model, to_float(data.x_test[:20]))
        spread = np.ptp(m.coords, axis=0).max()
        assert np.abs(self_placed - m.coords[:20]).max() < 0.1 * spread


def test_shipped_maps_place_mnist_training_digits_in_their_own_cluster(mnist_dir):
    """Real MNIST training digits (never in the maps) on the committed maps."""
    data = load_dataset(mnist_dir)
    rows = np.random.default_rng(0).choice(len(data.x_train), 300, replace=False)
    x, y = to_float(data.x_train[rows]), data.y_train[rows]
    models = load_models(SHIPPED_ARTIFACTS)
    maps, digits = embedding.load_maps(SHIPPED_ARTIFACTS, list(models))
    assert (digits == data.x_test).all()
    for name, model in models.items():
        assert (maps[name].labels == data.y_test).all()
        share = own_cluster_share(maps[name], maps[name].place_images(model, x), y)
        assert share >= 0.95, (name, share)


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("directory", ["fixture", "shipped"])
def test_map_files_load_without_pickle_and_are_small(artifacts, directory):
    folder = artifacts if directory == "fixture" else SHIPPED_ARTIFACTS
    manifest = read_manifest(folder)
    names = [n for n in manifest["models"]]
    for name in names:
        path = folder / f"{name}{embedding.MAP_SUFFIX}"
        assert path.name in manifest["files"]
        # Made by `embed`, or by `train`, whose hook maps what it trains.
        command = manifest["models"][name]["map"]["command"]
        assert ("embed" in command or " train " in command) or directory == "fixture"
        with np.load(path, allow_pickle=False) as f:
            assert f["coords"].dtype == np.float16 and f["labels"].dtype == np.uint8
            assert f["preds"].dtype == np.uint8 and f["reduced"].dtype == np.float16
            assert f["coords"].shape == (len(f["labels"]), 2)
        assert path.stat().st_size < 1.5e6
    with np.load(folder / embedding.DIGITS_FILE, allow_pickle=False) as f:
        assert f["images"].dtype == np.uint8
    assert (folder / embedding.DIGITS_FILE).stat().st_size < 4e6


@pytest.fixture
def folder(artifacts, tmp_path):
    return shutil.copytree(artifacts, tmp_path / "maps")


def rehash(folder) -> None:
    write_manifest(folder, {k: v for k, v in read_manifest(folder).items()
                            if k not in ("files", "versions")})


def map_error(folder) -> str:
    with pytest.raises(ArtifactError) as excinfo:
        embedding.load_maps(folder, ["numpy", "lenet5"])
    message = str(excinfo.value)
    assert str(folder) not in message and "python -m mnist_core embed" in message
    return message


def test_damaged_map_is_a_clear_artifact_error(folder):
    path = folder / "numpy.map.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert "maps/numpy.map.npz is damaged" in map_error(folder)
    rehash(folder)  # the same bytes, now matching the manifest: unreadable as a zip
    assert "maps/numpy.map.npz could not be read" in map_error(folder)


def test_map_that_is_not_a_map_or_needs_pickle_is_refused(folder):
    path = folder / "numpy.map.npz"
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez_compressed(path, **{**arrays, "coords": arrays["coords"][:, :1]})
    rehash(folder)
    assert "not a model map: coordinates" in map_error(folder)
    np.savez_compressed(path, **{**arrays, "labels": np.array([{"x": 1}] * 3, dtype=object)})
    rehash(folder)
    assert "could not be read" in map_error(folder)  # object arrays need pickle: refused
    shutil.copy(SHIPPED_ARTIFACTS / "lenet5.map.npz", folder / "lenet5.map.npz")
    np.savez_compressed(path, **arrays)
    rehash(folder)
    assert "maps 10000 digits" in map_error(folder)  # another test set than the digits'


def test_cli_embed_rewrites_a_map_and_the_manifest(folder, tmp_path):
    data = h.small_dataset()
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
             y_test=data.y_test)
    (folder / "lenet5.map.npz").unlink()
    assert main(["embed", "--data", str(npz), "--artifacts", str(folder),
                 "--models", "lenet5"]) == 0
    manifest = read_manifest(folder)
    assert "lenet5.map.npz" in manifest["files"]
    assert "embed" in manifest["models"]["lenet5"]["map"]["command"]
    assert manifest["models"]["lenet5"]["map"]["config"]["perplexity"] == embedding.MAP.perplexity
    maps, _ = embedding.load_maps(folder, ["numpy", "lenet5"])
    assert len(maps["lenet5"].coords) == len(data.x_test)
