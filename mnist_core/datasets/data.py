"""Load MNIST-format datasets from wherever a user keeps them, and validate them.

Sources, picked by ``load_dataset(path)``:

* a folder holding the four IDX files (gzipped or raw, ``train-images-idx3-ubyte`` or
  ``train-images.idx3-ubyte`` spellings);
* a folder or file of Kaggle CSV: ``mnist_train.csv``/``mnist_test.csv`` (label then 784
  pixels, header optional) or Digit Recognizer ``train.csv`` (header ``label,pixel0..``);
* keras's ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``);
* nothing: ``keras.datasets`` (needs the internet, so it is the last resort).

Every loader returns images as ``(N, 28, 28) uint8 in [0, 255]`` (white digit on black) and
labels as ``(N,) uint8 in [0, 9]``; any deviation raises :class:`DataError` naming the file.

Here: :class:`Dataset`, the validation split, and :func:`load_dataset`, which picks the
reader; the formats' own readers are :mod:`.idx`, :mod:`.csv_digits` and :mod:`.npz`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import DataError
from .csv_digits import load_csv_folder
from .idx import holds_idx, load_idx_folder
from .npz import load_npz

ENV_VAR = "MNIST_DATA"


@dataclass(frozen=True)
class DatasetInfo:
    """What the project knows of one dataset before reading it: its names and where a
    copy is found when ``--data`` is not given."""

    name: str                       # the canonical name, as manifests record it
    class_names: tuple[str, ...]    # 10 display names, index = label (classes.txt in the
                                    # data folder overrides them)
    env_var: str                    # environment variable naming a local copy
    system_dir: str = ""            # a system-wide copy used when the variable is unset
                                    # (Debian's package), "" for none
    short: str = ""                 # the name in the app's address and on the command
                                    # line (``?data=fashion``, ``--dataset fashion``)
    title: str = ""                 # how the app names the dataset
    subject: str = ""               # what its images show, as a page's title says it
    noun: str = "digit"             # one of its images, in the app's sentences


# Class names belong to the dataset; a local folder may override them with classes.txt.
DATASET_INFO: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", tuple(str(d) for d in range(10)), ENV_VAR,
                         short="digits", title="MNIST", subject="digits", noun="digit"),
    # Zalando's Fashion-MNIST (MIT licence); Debian's `dataset-fashion-mnist` installs
    # its four gzipped IDX files here.
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "FASHION_DATA", "/usr/share/datasets/fashion-mnist", short="fashion",
        title="Fashion-MNIST", subject="clothing", noun="image"),
}
DATASETS: dict[str, tuple[str, ...]] = {k: v.class_names for k, v in DATASET_INFO.items()}
# Every name a dataset answers to -> its canonical name ("fashion" -> "fashion-mnist").
DATASET_NAMES: dict[str, str] = {**{k: k for k in DATASET_INFO},
                                 **{v.short: k for k, v in DATASET_INFO.items() if v.short}}


def canonical(dataset: str) -> str:
    """The canonical name of ``dataset`` (any of :data:`DATASET_NAMES`); :class:`DataError`
    for an unknown one."""
    if dataset not in DATASET_NAMES:
        raise DataError(f"unknown dataset {dataset!r}; choose from {sorted(DATASET_NAMES)}")
    return DATASET_NAMES[dataset]


@dataclass(frozen=True)
class Dataset:
    """Train and test splits of one 10-class, 28x28 grayscale dataset.

    ``x_*``: ``(N, 28, 28) uint8 in [0, 255]``, white on black. ``y_*``: ``(N,) uint8 in [0, 9]``.
    """

    name: str                      # "mnist" or "fashion-mnist"
    class_names: tuple[str, ...]   # 10 display names, index = label
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str                    # where it was read from, for the manifest
    # Extra training images from other sources (real writers, :mod:`.writers`), same
    # dtypes and ranges; they join the training split after the validation split is
    # carved from ``x_train``, so validation stays the dataset's own.
    x_extra: np.ndarray | None = None
    y_extra: np.ndarray | None = None
    extra_source: dict | None = None  # what they are, for the manifest (credit, writers)


@dataclass(frozen=True)
class Split:
    """A fixed train/validation split carved from a training set (test is never touched)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def to_float(images: np.ndarray) -> np.ndarray:
    """``(N, 28, 28) uint8 in [0, 255]`` -> ``(N, 28, 28) float32 in [0, 1]``."""
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)


def split_validation(x: np.ndarray, y: np.ndarray, n_val: int = 5000, seed: int = 0) -> Split:
    """Carve a validation set of ``n_val`` images out of a training set, the same every time.

    The permutation depends only on ``seed`` and ``len(x)``, so epochs and hyperparameters
    are always picked on the same images and never on the test set.
    """
    if not 0 < n_val < len(x):
        raise ValueError(f"n_val must be between 1 and {len(x) - 1}, got {n_val}")
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return Split(x[train], y[train], x[val], y[val])


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------

def resolve_data_path(path: str | Path | None, dataset: str = "mnist") -> Path | None:
    """``path`` if given, else the dataset's environment variable (``$MNIST_DATA``,
    ``$FASHION_DATA``) if set, else its system-wide copy when installed (Fashion-MNIST:
    Debian's ``/usr/share/datasets/fashion-mnist``), else ``None`` (keras download)."""
    if path:
        return Path(path).expanduser()
    info = DATASET_INFO[canonical(dataset)]
    env = os.environ.get(info.env_var)
    if env:
        return Path(env).expanduser()
    if info.system_dir and Path(info.system_dir).is_dir():
        return Path(info.system_dir)
    return None


def load_dataset(path: str | Path | None = None, dataset: str = "mnist") -> Dataset:
    """Load a full dataset from ``path`` (folder, .csv, .npz), else where
    :func:`resolve_data_path` finds it, else keras. ``dataset``: any of
    :data:`DATASET_NAMES` (``"mnist"``, ``"fashion"``...).

    Raises :class:`DataError` with a message naming the file and the problem.
    """
    dataset = canonical(dataset)
    class_names = DATASETS[dataset]
    where = resolve_data_path(path, dataset)
    if where is None:
        arrays, source = _load_keras(dataset), f"keras.datasets.{dataset.replace('-', '_')}"
    elif not where.exists():
        raise DataError(f"{where}: no such file or folder")
    elif where.is_dir():
        names = where / "classes.txt"
        if names.is_file():
            class_names = _read_class_names(names)
        if holds_idx(where):
            arrays, source = load_idx_folder(where), str(where)
        elif (csv := load_csv_folder(where)) is not None:
            arrays, source = csv[:4], csv[4]
        elif (where / "mnist.npz").is_file():
            arrays, source = load_npz(where / "mnist.npz"), str(where / "mnist.npz")
        else:
            raise DataError(f"{where}: found no IDX files, mnist_train.csv/train.csv or "
                            f"mnist.npz")
    elif where.suffix == ".npz":
        arrays, source = load_npz(where), str(where)
    elif where.name.lower().endswith((".csv", ".csv.gz")):
        # This file's own pair (a test file names its training file), else this file alone,
        # a test split carved from it: never another CSV that happens to sit beside it.
        name = where.name.lower().removesuffix(".gz")
        train = {"mnist_test.csv": "mnist_train.csv", "test.csv": "train.csv"}.get(name)
        csv = load_csv_folder(where.parent, train or where.name)
        if csv is None:
            raise DataError(f"{where}: its training file {train} is not beside it")
        arrays, source = csv[:4], csv[4]
    elif where.suffix == ".gz":
        raise DataError(f"{where}: pass the folder holding it, or gunzip it first")
    else:
        raise DataError(f"{where}: unsupported file type (use a folder, .csv or .npz)")
    x_train, y_train, x_test, y_test = arrays
    return Dataset(dataset, class_names, x_train, y_train, x_test, y_test, source)


def _read_class_names(path: Path) -> tuple[str, ...]:
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if len(names) != 10:
        raise DataError(f"{path}: expected 10 class names, found {len(names)}")
    return names


def _load_keras(dataset: str):
    try:
        import keras
        loader = {"mnist": keras.datasets.mnist,
                  "fashion-mnist": keras.datasets.fashion_mnist}[dataset]
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # network errors come in many types
        raise DataError(f"could not download {dataset} through keras.datasets ({exc}); "
                        f"point --data or ${DATASET_INFO[dataset].env_var} at a local "
                        f"copy") from exc
    return x_train, y_train.astype(np.uint8), x_test, y_test.astype(np.uint8)
