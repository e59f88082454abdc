"""Fashion-MNIST (issue 23): where the data is found, its class names, the clothing
augmentation, the clothing registry, a garment photo made into a Fashion-MNIST image, and
the SHIPPED clothing models in artifacts/fashion/ against their floors on the real test set.

The real data comes from ``$FASHION_DATA`` or Debian's ``dataset-fashion-mnist``, which
``scripts/test.sh`` installs with apt when missing; the floors skip (saying so) only where
neither is on the machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS, keras_optimizer_traces, make_dataset, write_idx_folder
from shipped import Shipped

from mnist_core.artifacts.files import (ArtifactError, default_dir, load_models,
                                        read_manifest)
from mnist_core.artifacts.registry import FASHION_REGISTRY, REGISTRY, registry_for
from mnist_core.datasets.common import DataError
from mnist_core.datasets.data import (DATASET_INFO, Dataset, canonical, load_dataset,
                                      resolve_data_path, to_float)
from mnist_core.models.views import NO_VIEWS
from mnist_core.preprocess.garment import NoGarmentError, garment_input
from mnist_core.training.augment import AugmentConfig
from mnist_core.training.augment_clothing import ClothingAugment, flip, shift

FASHION_DIR = SHIPPED_ARTIFACTS / "fashion"
CLOTHES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot")
# Issue 23's floors on Fashion-MNIST's 10,000 test images.
FLOORS = {"numpy": 0.895, "dense": 0.895, "cnn": 0.935, "lenet5": 0.905}
# Issue 23: all four trained from scratch in at most 30 minutes on 2 cores, checked on the
# CPU seconds `train` records (all threads; wall time on a shared machine is inflated by
# the others' work): 30 minutes of both cores.
MAX_TOTAL_TRAIN_CPU_SECONDS = 2 * 30 * 60
# Floors the shipped models do not meet yet, each with what was measured. Strict: once a
# retrained model meets its floor, the test fails until the entry goes.
NOT_MET: dict[str, str] = {}


def real_fashion_dir() -> Path | None:
    path = resolve_data_path(None, "fashion")
    return path if path is not None and path.is_dir() else None


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

def test_names_and_aliases():
    assert canonical("fashion") == canonical("fashion-mnist") == "fashion-mnist"
    assert canonical("digits") == canonical("mnist") == "mnist"
    with pytest.raises(DataError, match="unknown dataset 'shoes'"):
        canonical("shoes")
    assert DATASET_INFO["fashion-mnist"].class_names == CLOTHES


def test_fashion_is_found_by_its_own_variable_never_mnists(tmp_path, monkeypatch):
    digits = write_idx_folder(tmp_path / "digits", make_dataset(60, 20, seed=1))
    clothes = write_idx_folder(tmp_path / "clothes", make_dataset(60, 20, seed=2))
    monkeypatch.setenv("MNIST_DATA", str(digits))
    monkeypatch.setenv("FASHION_DATA", str(clothes))
    data = load_dataset(None, "fashion")
    assert data.name == "fashion-mnist" and data.source == str(clothes)
    assert data.class_names == CLOTHES       # the names come with the dataset
    assert load_dataset(None, "mnist").source == str(digits)
    # --data wins over both
    assert load_dataset(digits, "fashion").source == str(digits)


def test_without_variable_debians_folder_is_used(monkeypatch):
    monkeypatch.delenv("FASHION_DATA", raising=False)
    system = Path(DATASET_INFO["fashion-mnist"].system_dir)
    expected = system if system.is_dir() else None
    assert resolve_data_path(None, "fashion") == expected


def test_classes_txt_overrides_the_names(tmp_path):
    folder = write_idx_folder(tmp_path / "c", make_dataset(60, 20))
    (folder / "classes.txt").write_text("\n".join(f"thing {i}" for i in range(10)))
    assert load_dataset(folder, "fashion").class_names[3] == "thing 3"


# ---------------------------------------------------------------------------------------
# Clothing augmentation
# ---------------------------------------------------------------------------------------

def test_flip_mirrors_only_the_chosen_images():
    x = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    out = flip(x, np.array([True, False, True]))
    np.testing.assert_array_equal(out[0], x[0][:, ::-1])
    np.testing.assert_array_equal(out[1], x[1])
    np.testing.assert_array_equal(out[2], x[2][:, ::-1])


def test_shift_moves_by_whole_pixels_with_black_coming_in():
    x = np.zeros((2, 28, 28), np.float32)
    x[:, 10, 12] = 1.0
    out = shift(x, np.array([[2, -1], [-3, 0]]))
    assert out[0, 12, 11] == 1.0 and out[0].sum() == 1.0
    assert out[1, 7, 12] == 1.0 and out[1].sum() == 1.0
    edge = np.ones((1, 28, 28), np.float32)
    moved = shift(edge, np.array([[0, 2]]))
    assert (moved[0, :, :2] == 0).all() and (moved[0, :, 2:] == 1).all()


def test_clothing_augment_is_seeded_and_keeps_every_image():
    x = np.random.default_rng(1).random((50, 28, 28)).astype(np.float32)
    aug = ClothingAugment()
    a = aug.apply(x, np.random.default_rng(7))
    b = aug.apply(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.dtype == np.float32
    assert not np.array_equal(a, x)
    same = ClothingAugment(flip_p=0.0, shift_px=0).apply(x, np.random.default_rng(7))
    np.testing.assert_array_equal(same, x)


def test_clothing_registry_same_kinds_no_digit_distortions():
    assert list(FASHION_REGISTRY) == list(REGISTRY)
    assert registry_for("fashion") is FASHION_REGISTRY and registry_for(None) is REGISTRY
    for name, spec in FASHION_REGISTRY.items():
        assert isinstance(spec.train.augment, ClothingAugment), name
        assert not isinstance(spec.train.augment, AugmentConfig), name
        assert spec.train.writers_share == 0.0, name   # no real writers' digits
        assert spec.views == NO_VIEWS, name           # no turned or narrowed digit views
        assert type(spec.arch) is type(REGISTRY[name].arch), name
    assert FASHION_REGISTRY["cnn"].arch.filters == (32, 64)
    assert FASHION_REGISTRY["cnn"].arch.dense == 128


def test_training_on_clothing_writes_its_own_manifest(tmp_path, monkeypatch):
    from dataclasses import replace

    from mnist_core.package import train_and_package

    small = make_dataset(300, 250, seed=3)
    data = Dataset("fashion-mnist", CLOTHES, small.x_train, small.y_train, small.x_test,
                   small.y_test, "test")
    seen = []
    real = ClothingAugment.apply
    monkeypatch.setattr(ClothingAugment, "apply",
                        lambda self, x, rng: seen.append(len(x)) or real(self, x, rng))
    train_and_package(["numpy"], data, tmp_path,
                      train_cfg=lambda spec: replace(spec.train, epochs=1, n_val=50))
    assert seen, "the clothing augmentation ran"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["dataset"] == "fashion-mnist"
    assert manifest["class_names"] == list(CLOTHES)
    assert manifest["models"]["numpy"]["train_config"]["augment"] == {"flip_p": 0.5,
                                                                     "shift_px": 0}
    model = load_models(tmp_path)["numpy"]
    assert model.views == NO_VIEWS     # loaded through the clothing registry


def test_missing_clothing_folder_says_how_to_rebuild(tmp_path):
    with pytest.raises(ArtifactError, match="--dataset fashion"):
        load_models(tmp_path / "fashion")
    assert default_dir("fashion") == SHIPPED_ARTIFACTS / "fashion"
    assert default_dir("mnist") == SHIPPED_ARTIFACTS


# ---------------------------------------------------------------------------------------
# A garment photo -> a Fashion-MNIST image
# ---------------------------------------------------------------------------------------

def garment_photo(image28: np.ndarray, background: int = 235, scale: int = 12,
                  pad: int = 60, seed: int = 0) -> np.ndarray:
    """A Fashion-MNIST image as a photo: the product dark on a light, slightly noisy
    plain background, upscaled, RGB ``uint8`` (the dataset's making, undone)."""
    big = cv2.resize(image28, (28 * scale, 28 * scale), interpolation=cv2.INTER_CUBIC)
    big = np.clip(big.astype(np.float32) / 255, 0, 1)
    side = 28 * scale + 2 * pad
    photo = np.full((side, side), background / 255, np.float32)
    photo[pad:pad + 28 * scale, pad:pad + 28 * scale] = background / 255 * (1 - big)
    photo += np.random.default_rng(seed).normal(0, 0.01, photo.shape).astype(np.float32)
    return np.repeat((np.clip(photo, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)


def test_garment_photo_becomes_the_dataset_image(fashion_test):
    x, _ = fashion_test
    for i in range(5):
        original = (x[i] * 255).round().astype(np.uint8)
        out = garment_input(garment_photo(original, seed=i))
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 1
        rows, cols = np.nonzero(out > 0.05)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 >= 27   # the longer side fills the square
        assert np.abs(out - to_float(original)).mean() < 0.1, i


def test_light_garment_on_dark_background_is_grey_on_black_too():
    shape = np.zeros((28, 28), np.uint8)
    cv2.rectangle(shape, (8, 2), (19, 25), 255, -1)
    photo = 255 - garment_photo(shape, background=235)    # light shirt on a dark table
    out = garment_input(photo)
    assert out[14, 14] > 0.6 and out[0, 0] == 0 and out[14, 0] == 0


@pytest.mark.parametrize("photo, reason", [
    (np.full((300, 400, 3), 200, np.uint8), "no garment found"),
    (np.random.default_rng(0).integers(0, 256, (300, 400, 3)).astype(np.uint8),
     "background is not plain|fills the photo"),
])
def test_photos_that_cannot_be_made_into_a_garment_say_why(photo, reason):
    with pytest.raises(NoGarmentError, match=reason):
        garment_input(photo)


def test_garment_cut_off_by_the_frame_is_refused():
    photo = np.full((300, 300, 3), 230, np.uint8)
    photo[:, 20:280] = 40                 # runs off the top and bottom, fills the width
    photo[:, :20] = 40
    with pytest.raises(NoGarmentError, match="background is not plain|fills the photo"):
        garment_input(photo)


# ---------------------------------------------------------------------------------------
# The shipped clothing models
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fashion_test():
    if real_fashion_dir() is None:
        pytest.skip("Fashion-MNIST not found: set $FASHION_DATA or install Debian's "
                    "dataset-fashion-mnist (scripts/test.sh does)")
    data = load_dataset(None, "fashion")
    assert len(data.y_test) == 10_000 and data.class_names == CLOTHES
    return to_float(data.x_test), data.y_test.astype(np.int64)


SHIPPED = Shipped(FASHION_DIR, what="clothing artifacts")


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=NOT_MET[n])) if n in NOT_MET
    else n for n in FLOORS])
def test_fashion_accuracy_floor(name, fashion_test):
    accuracy = SHIPPED.accuracy(name, fashion_test)
    assert accuracy >= FLOORS[name], (f"{name}: {accuracy:.2%} on Fashion-MNIST's test set, "
                                      f"floor {FLOORS[name]:.1%}")


@pytest.mark.parametrize("name", FLOORS)
def test_clothing_metrics_json_matches_fresh_accuracy(name, fashion_test):
    metrics = SHIPPED.models()[name].metrics
    assert metrics["n"] == 10_000
    assert metrics["accuracy"] == pytest.approx(SHIPPED.accuracy(name, fashion_test), abs=1e-4)


def test_shipped_clothing_manifest_and_training_time():
    manifest = read_manifest(FASHION_DIR)
    assert manifest["dataset"] == "fashion-mnist"
    assert manifest["class_names"] == list(CLOTHES)
    assert set(manifest["models"]) == set(FLOORS)
    assert not any(name.endswith("-ubyte.gz") or "idx" in name for name in manifest["files"])
    cpu = {n: e.get("train_cpu_seconds") for n, e in manifest["models"].items()}
    for name, value in cpu.items():
        assert isinstance(value, (int, float)) and value > 0, f"{name}: {value!r}"
        assert "--dataset fashion" in manifest["models"][name]["command"]
    assert sum(cpu.values()) <= MAX_TOTAL_TRAIN_CPU_SECONDS, cpu
    models = SHIPPED.models()
    for name, model in models.items():
        assert model.views == NO_VIEWS
        assert model.metrics.get("calibration"), f"{name} is calibrated"
        assert (FASHION_DIR / f"{name}.map.npz").is_file()
        if FASHION_REGISTRY[name].kind == "keras":
            assert keras_optimizer_traces(FASHION_DIR / FASHION_REGISTRY[name].filename) == []
    size = sum(p.stat().st_size for p in FASHION_DIR.iterdir())
    assert size < 40 * 2**20, f"artifacts/fashion/ holds {size / 2**20:.1f} MB"


def test_digit_manifest_does_not_list_the_clothing_folder():
    files = read_manifest(SHIPPED_ARTIFACTS)["files"]
    assert not any(name.startswith("fashion") for name in files)
    assert read_manifest(SHIPPED_ARTIFACTS)["dataset"] == "mnist"


def test_shipped_cnn_reads_garment_photos(fashion_test):
    from mnist_core.reading.inference import read_garment

    x, y = fashion_test
    models = {"cnn": SHIPPED.models()["cnn"]}
    rng = np.random.default_rng(5)
    rows = rng.choice(len(y), 40, replace=False)
    right = sum(read_garment(garment_photo((x[i] * 255).astype(np.uint8), seed=int(i)),
                             models).probs["cnn"].argmax() == y[i] for i in rows)
    assert right >= 34, f"{right} of 40 photos read right"


def test_long_class_names_run_upwards_under_the_bars_digits_stay_level():
    from ui.charts import probability_bars

    p = {"cnn": np.full(10, 0.1, np.float32)}
    clothing = probability_bars(p, {"cnn": "Keras CNN"}, CLOTHES)
    digits = probability_bars(p, {"cnn": "Keras CNN"}, [str(d) for d in range(10)])
    assert 'class="mb-x mb-l"' in clothing and "<span>Ankle boot</span>" in clothing
    assert 'class="mb-x mb-l"' not in digits and 'class="mb-x"' in digits


def test_clothing_is_never_judged_as_a_digit():
    from mnist_core.reading import novelty

    unsure = {"a": np.full(10, 0.1, np.float32), "b": np.roll(np.eye(10)[0] * 0.3 + 0.07, 3),
              "c": np.roll(np.eye(10)[0] * 0.3 + 0.07, 5)}
    blot = np.ones((28, 28), np.float32)           # a coat fills its square
    assert novelty.check(unsure, blot, novelty.config_for("mnist")).flagged
    assert not novelty.check(unsure, blot, novelty.config_for("fashion-mnist")).flagged
