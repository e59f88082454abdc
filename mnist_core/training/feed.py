"""What a training loop is fed: the training and validation split (:func:`prepare`), and
each epoch's shuffled, augmented images, made one epoch ahead (:class:`EpochFeeder`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..datasets.data import Dataset, split_validation, to_float
from .augment import NONE, augment, scanned_digits, style_variants
from .augment_clothing import ClothingAugment
from .config import TrainConfig


def validation_size(n_images: int, cfg: TrainConfig) -> int:
    """Images carved from ``n_images`` for validation: ``cfg.n_val``, but at most a fifth
    (a user's own small CSV still gets a split) and at least one."""
    return max(1, min(cfg.n_val, n_images // 5))


def training_size(n_images: int, cfg: TrainConfig) -> int:
    """Images a training on ``n_images`` trains on: what validation leaves, at most
    ``cfg.n_train``."""
    left = n_images - validation_size(n_images, cfg)
    return left if cfg.n_train is None else min(cfg.n_train, left)


def prepare(data: Dataset, cfg: TrainConfig, as_float: bool = True):
    """``(x, y, x_val, y_val)``: the training images (float32 in [0, 1], or as stored,
    uint8, when not ``as_float``: a quarter of the memory, for a loop that converts each
    batch with :func:`to_float`), int64 labels, the validation split (float32)."""
    split = split_validation(data.x_train, data.y_train,
                             validation_size(len(data.x_train), cfg), cfg.seed)
    x, y = split.x_train, split.y_train
    if cfg.n_train is not None and cfg.n_train < len(x):
        idx = np.random.default_rng(cfg.seed + 1).permutation(len(x))[:cfg.n_train]
        x, y = x[idx], y[idx]
    return (to_float(x) if as_float else x), y.astype(np.int64), to_float(split.x_val), \
        split.y_val.astype(np.int64)


def extra_pool(data: Dataset, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """The extra images to mix into each epoch, as float ``(M, 28, 28)`` and labels, or
    None when there are none or the config asks for none."""
    if cfg.writers_share <= 0 or data.x_extra is None or not len(data.x_extra):
        return None
    return to_float(data.x_extra), np.asarray(data.y_extra).astype(np.int64)


class _Shuffled:
    """An epoch's shuffled images without copying them: ``x[order]``, gathered slice by
    slice (``epoch[a:b]`` is ``x[order[a:b]]``, an array) or whole by ``np.asarray``. A
    copy of 20,000 training images is 63 MB, and the feeder holds two (this epoch's and
    the next): a third of the app's training worker's memory."""

    def __init__(self, x: np.ndarray, order: np.ndarray):
        self.x, self.order = x, order
        self.shape = (len(order), *x.shape[1:])

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index) -> np.ndarray:
        return self.x[self.order[index]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.x[self.order]
        return out if dtype is None else out.astype(dtype, copy=False)


class EpochFeeder:
    """Produces each epoch's shuffled, augmented copy of the training set one epoch ahead
    (without augmentation or extra images, a :class:`_Shuffled` order of it, in the
    training images' own dtype; otherwise float32)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, cfg: TrainConfig,
                 extra: tuple[np.ndarray, np.ndarray] | None = None):
        self.x, self.y, self.cfg, self.extra = x, y, cfg, extra
        self.n_extra = self.extra_count(len(x), cfg, extra)
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.next = self.pool.submit(self._make, 0)

    @staticmethod
    def extra_count(n: int, cfg: TrainConfig, extra) -> int:
        """Extra images per epoch beside ``n`` of the dataset's, so that they make up
        ``cfg.writers_share`` of it (at most all of them)."""
        if extra is None:
            return 0
        share = min(cfg.writers_share, 0.9)
        return min(len(extra[0]), int(round(n * share / (1 - share))))

    def _make(self, epoch: int):
        rng = np.random.default_rng((self.cfg.seed, epoch))
        x, y = self.x, self.y
        if x.dtype == np.uint8 and (self.n_extra or self.cfg.augment != NONE):
            x = to_float(x)  # augmentation and the extra images work in float32
        if self.n_extra:
            pick = rng.choice(len(self.extra[0]), self.n_extra, replace=False)
            x = np.concatenate([x, self.extra[0][pick]])
            y = np.concatenate([y, self.extra[1][pick]])
        order = rng.permutation(len(x))
        if self.cfg.augment == NONE and not self.n_extra:
            return _Shuffled(x, order), y[order]
        x, y = x[order], y[order]
        if isinstance(self.cfg.augment, ClothingAugment):
            x = self.cfg.augment.apply(x, rng)
        elif self.cfg.augment != NONE:
            x = style_variants(x, y, rng, self.cfg.augment.styles, self.cfg.augment.hooked_nines)
            if self.cfg.augment.scans > 0:  # drawn only when asked, so other runs stay as they were
                x = scanned_digits(x, rng, self.cfg.augment.scans, self.cfg.augment.scan)
            x = augment(x, rng, self.cfg.augment)
        return x, y

    def get(self, epoch: int):
        batch = self.next.result()
        if epoch + 1 < self.cfg.epochs:
            self.next = self.pool.submit(self._make, epoch + 1)
        return batch

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)
