"""Shared fixtures and helpers for the mnist_core tests.

Everything here is small on purpose: synthetic 28x28 datasets of a few hundred images,
IDX/CSV writers, and one session-scoped artifacts folder built through the real training,
saving and manifest functions (a tiny NumPy MLP and a one-epoch LeNet-5).
"""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from mnist_core.datasets.data import DATASETS, ENV_VAR, Dataset

REPO = Path(__file__).resolve().parent.parent
SHIPPED_ARTIFACTS = REPO / "artifacts"

# Users see no error details (.streamlit/config.toml); a failing test should show them.
os.environ.setdefault("STREAMLIT_CLIENT_SHOW_ERROR_DETAILS", "full")


# ---------------------------------------------------------------------------------------
# Real MNIST (optional)
# ---------------------------------------------------------------------------------------

def real_mnist_dir() -> Path | None:
    """Real MNIST: ``$MNIST_DATA`` if it exists, else ``../shared/data/mnist`` if present."""
    env = os.environ.get(ENV_VAR)
    if env and Path(env).expanduser().exists():
        return Path(env).expanduser()
    shared = REPO.parent / "shared" / "data" / "mnist"
    return shared if any(shared.glob("t10k-images*idx3-ubyte*")) else None


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = real_mnist_dir()
    if path is None:
        pytest.skip(f"real MNIST not found (set ${ENV_VAR} or put the IDX files in "
                    f"{REPO.parent / 'shared' / 'data' / 'mnist'})")
    return path


# ---------------------------------------------------------------------------------------
# Synthetic data: each class is a distinct smooth blob pattern plus noise and jitter
# ---------------------------------------------------------------------------------------

def _prototypes() -> np.ndarray:
    rng = np.random.default_rng(1234)
    protos = []
    for _ in range(10):
        field = cv2.GaussianBlur(rng.standard_normal((20, 20)).astype(np.float32), (0, 0), 2.0)
        blob = np.zeros((28, 28), np.float32)
        blob[4:24, 4:24] = field > np.quantile(field, 0.75)
        protos.append(blob)
    return np.stack(protos)


PROTOTYPES = _prototypes()


def make_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic ``(28, 28) uint8`` images with balanced labels 0-9."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(y)
    x = PROTOTYPES[y] * rng.uniform(0.7, 1.0, (n, 1, 1)).astype(np.float32)
    x = x + rng.normal(0, 0.08, x.shape).astype(np.float32)
    for i, (dy, dx) in enumerate(rng.integers(-1, 2, (n, 2))):
        x[i] = np.roll(x[i], (dy, dx), axis=(0, 1))
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8), y


def make_dataset(n_train: int = 600, n_test: int = 200, seed: int = 0) -> Dataset:
    x_train, y_train = make_images(n_train, seed)
    x_test, y_test = make_images(n_test, seed + 1000)
    return Dataset("mnist", DATASETS["mnist"], x_train, y_train, x_test, y_test, "synthetic")


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    return make_dataset()


def numeric_grad(f, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of scalar ``f()`` w.r.t. every entry of ``array`` (edited in
    place): the reference every hand-written gradient is checked against."""
    grad = np.zeros(array.shape, np.float64)
    for idx in np.ndindex(array.shape):
        old = array[idx]
        array[idx] = old + eps
        up = f()
        array[idx] = old - eps
        down = f()
        array[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


@pytest.fixture
def worker_payloads(monkeypatch) -> list:
    """What each training worker sent back (``worker._run_worker``'s results, in order),
    with its own report: ``imported``, ``peak_rss_kb``, ``cpu_seconds``, ``blas_threads``."""
    from mnist_core import worker

    payloads: list = []
    real = worker._run_worker
    monkeypatch.setattr(worker, "_run_worker",
                        lambda *args: payloads.append(real(*args)) or payloads[-1])
    return payloads


# ---------------------------------------------------------------------------------------
# File writers
# ---------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an unsigned-byte IDX file (magic 2049 labels, 2051 images)."""
    array = np.asarray(array, np.uint8)
    magic = {1: 2049, 3: 2051}[array.ndim]
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


IDX_NAMES = {  # spelling -> names in the order x_train, y_train, x_test, y_test
    "dash": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    "dot": ("train-images.idx3-ubyte", "train-labels.idx1-ubyte",
            "t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte"),
}


def write_idx_folder(folder: Path, data: Dataset, gz: bool = True, spelling: str = "dash") -> Path:
    """Write ``data`` as the four IDX files in ``folder``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
    for name, array in zip(IDX_NAMES[spelling], arrays):
        raw = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return folder


def csv_text(x: np.ndarray, y: np.ndarray | None, header: str | None = None) -> str:
    """MNIST-as-CSV text: ``label, p0..p783`` per row (pixels only when ``y`` is None)."""
    flat = np.asarray(x).reshape(len(x), -1).astype(int)
    table = flat if y is None else np.column_stack([np.asarray(y, int), flat])
    lines = [header] if header else []
    lines += [",".join(map(str, row)) for row in table]
    return "\n".join(lines) + "\n"


def digit_recognizer_header(labeled: bool = True) -> str:
    pixels = ",".join(f"pixel{i}" for i in range(784))
    return f"label,{pixels}" if labeled else pixels


def draw_digit(digit: int, size: int = 280) -> np.ndarray:
    """A thick dark digit on a white ``(size, size)`` canvas, like a drawing or a scan."""
    canvas = np.full((size, size), 255, np.uint8)
    scale = size / 35
    (w, h), _ = cv2.getTextSize(str(digit), cv2.FONT_HERSHEY_SIMPLEX, scale, size // 12)
    origin = ((size - w) // 2, (size + h) // 2)
    cv2.putText(canvas, str(digit), origin, cv2.FONT_HERSHEY_SIMPLEX, scale, 0, size // 12,
                cv2.LINE_AA)
    return canvas


# ---------------------------------------------------------------------------------------
# Training configs and a tiny artifacts folder built with the real functions
# ---------------------------------------------------------------------------------------

def tiny_train_config(**overrides):
    """A TrainConfig that trains in a second or two on :func:`make_dataset` data."""
    from mnist_core.training.augment import NONE
    from mnist_core.training.config import TrainConfig
    base = dict(epochs=2, batch_size=32, lr=3e-3, n_val=100, augment=NONE, warmup_epochs=0.1)
    return TrainConfig(**{**base, **overrides})


def tiny_numpy_arch():
    from mnist_core.models.architectures import NumpyConfig
    return NumpyConfig(hidden=(32,), dropout=0.0)


@pytest.fixture(scope="session")
def tiny_numpy_result(tiny_dataset):
    from mnist_core.artifacts.registry import train_model
    return train_model("numpy", tiny_dataset, train_cfg=tiny_train_config(),
                       arch=tiny_numpy_arch())


@pytest.fixture(scope="session")
def tiny_keras_result(tiny_dataset):
    """LeNet-5 trained for one epoch on a few hundred synthetic images."""
    from mnist_core.artifacts.registry import train_model
    return train_model("lenet5", tiny_dataset, train_cfg=tiny_train_config(epochs=1))


@dataclass
class TinyArtifacts:
    directory: Path
    nets: dict          # model name -> in-memory trained model
    data: Dataset


def write_artifacts(directory: Path, results: dict, data: Dataset) -> Path:
    """Save trained models with history, metrics and manifest, the way ``train`` does."""
    from mnist_core.artifacts.files import save_model, write_json, write_manifest
    from mnist_core.datasets.data import to_float
    from mnist_core.insight.evaluate import score
    from mnist_core.models.keras_tf import fast_predict_fn
    from mnist_core.artifacts.registry import REGISTRY

    for name, result in results.items():
        save_model(result.model, name, directory)
        write_json(directory, f"{name}.history.json",
                   {"model": name, "epochs": [vars(e) for e in result.history],
                    "train_seconds": result.seconds})
        predict = (result.model.predict_proba if REGISTRY[name].kind == "numpy"
                   else fast_predict_fn(result.model))
        probs = predict(to_float(data.x_test))
        write_json(directory, f"{name}.metrics.json",
                   {"model": name, **score(probs, data.y_test.astype(np.int64)),
                    "train_seconds": result.seconds})
    write_manifest(directory, {"dataset": data.name, "data_source": data.source,
                               "models": {n: {"file": REGISTRY[n].filename} for n in results}})
    return directory


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory, tiny_dataset, tiny_numpy_result, tiny_keras_result
                   ) -> TinyArtifacts:
    directory = tmp_path_factory.mktemp("artifacts")
    results = {"numpy": tiny_numpy_result, "lenet5": tiny_keras_result}
    write_artifacts(directory, results, tiny_dataset)
    return TinyArtifacts(directory, {n: r.model for n, r in results.items()}, tiny_dataset)


def keras_optimizer_traces(path: Path) -> list[str]:
    """What of an optimizer a ``.keras`` file holds: compile config, optimizer weights."""
    import io
    import json
    import zipfile

    import h5py

    found = []
    with zipfile.ZipFile(path) as archive:
        if json.loads(archive.read("config.json")).get("compile_config"):
            found.append("compile_config in config.json")
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
            if "optimizer" in weights:
                found.append("optimizer variables in model.weights.h5")
    return found


# ---------------------------------------------------------------------------------------
# Running the CLI
# ---------------------------------------------------------------------------------------

def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m mnist_core ARGS`` from the repository root, capturing text output."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "mnist_core", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


# -- app tests ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """The AppTests' tiny trained artifacts folder (built once by tests/app_helpers.py)."""
    import app_helpers
    return app_helpers.fixture_artifacts(tmp_path_factory)


@pytest.fixture(scope="module")
def models(artifacts):
    from mnist_core.artifacts.files import load_models
    return load_models(artifacts)
