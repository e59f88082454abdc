"""Train a network: the configuration, the training loops and progress output.

:func:`fit` picks the loop: :func:`train_network` (NumPy, on the engine's layers: every
architecture) or :func:`train_keras` (Keras itself, for the ``train`` command). Both feed
freshly augmented data every epoch (prepared on a worker thread while the previous epoch
trains), keep a fixed validation split for monitoring, and report through a callback so
the CLI prints bars and the app draws live curves.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import tuning
from ..datasets.data import Dataset, to_float
from ..engine.layers import Context
from ..engine.optim import SGD, AdamConfig, AdamW
from ..models.architectures import build_net
from ..models.model import model_from_bytes
from .average import WeightAverage, keras_precise_batchnorm
from .config import Callback, EpochLog, StopFlag, TrainConfig, TrainResult, lr_at
from .feed import EpochFeeder, extra_pool, prepare


# ---------------------------------------------------------------------------------------
# Progress output
# ---------------------------------------------------------------------------------------

class ProgressBar:
    """A one-line-per-epoch text progress bar with loss, accuracy and ETA (for the CLI)."""

    def __init__(self, name: str, epochs: int, stream=sys.stderr, width: int = 24):
        self.name, self.epochs, self.stream, self.width = name, epochs, stream, width
        self.start = time.perf_counter()

    def __call__(self, event: str, info: dict) -> None:
        if event == "batch":
            frac = info["step"] / info["steps"]
            elapsed = time.perf_counter() - info["epoch_start"]
            eta = elapsed / max(frac, 1e-9) * (1 - frac)
            filled = int(self.width * frac)
            self.stream.write(f"\r{self.name} {info['epoch'] + 1}/{self.epochs} "
                              f"[{'=' * filled}{'.' * (self.width - filled)}] "
                              f"loss {info['loss']:.4f} acc {info['accuracy']:.4f} "
                              f"ETA {eta:4.0f}s ")
        elif event == "epoch":
            log: EpochLog = info["log"]
            self.stream.write(f"\r{self.name} {log.epoch}/{self.epochs} "
                              f"loss {log.loss:.4f} acc {log.accuracy:.4f} "
                              f"val_loss {log.val_loss:.4f} val_acc {log.val_accuracy:.4f} "
                              f"{log.seconds:.1f}s{' ' * 20}\n")
        self.stream.flush()


# ---------------------------------------------------------------------------------------
# The NumPy loop: every architecture, on the engine
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EngineConfig:
    """How the NumPy loop computes (not what it learns: that is the TrainConfig)."""

    adam: AdamConfig = AdamConfig()  # AdamW's constants: Keras's defaults, as train_keras
    chunk_bytes: int = Context().chunk_bytes  # im2col columns built per chunk of images
    blas_threads: int | None = 1  # BLAS threads while training (None: as the process
                                  # has it). One: a live-CNN step of 128 images took
                                  # 159 ms with one and 589 ms with two on this 2-core
                                  # machine shared with other work (OpenBLAS's threads
                                  # spin and thrash on these small products)
    bn_images: int = 4096         # "precise BN": after training (and after a stop), every
                                  # BatchNorm's moving mean and variance are re-estimated
                                  # exactly over up to this many training images (0: keep
                                  # the moving averages). Those averages (momentum 0.9-0.99)
                                  # have barely left their initial 0 and 1 after a few dozen
                                  # batches while the weights have: live CNN, 1,000 images,
                                  # one epoch, validation 11% with them, 80-85% re-estimated
    bn_batch: int | None = None   # images per batch of that pass, each normalised by its own
                                  # statistics as in training (None: the training's batch)


DEFAULT_ENGINE = EngineConfig()

# Streams of the SeedSequence(cfg.seed) tree, beside the weights' (architectures) and the
# feeder's (seed, epoch) ones.
_DROPOUT_STREAM, _BN_STREAM = 1, 2


def precise_bn_sample(x: np.ndarray, cfg: TrainConfig, engine: EngineConfig) -> np.ndarray:
    """Up to ``engine.bn_images`` of the training images ``x`` (not augmented: the images
    the network is then asked about look like them), drawn from the seed's own stream."""
    n = min(len(x), max(0, engine.bn_images))
    if n >= len(x):
        return x
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_BN_STREAM,)))
    return x[np.sort(rng.choice(len(x), n, replace=False))]


def fit(data: Dataset, cfg: TrainConfig, arch, callback: Callback | None = None,
        stop: StopFlag | None = None, engine: str = "tensorflow") -> TrainResult:
    """Train a network of ``arch`` on ``data`` with ``cfg``: the one place that picks the
    loop. ``engine``: what trains a Keras architecture, ``"tensorflow"`` (Keras itself,
    built from the same layer list: the ``train`` command, whose files ship) or
    ``"numpy"`` (:func:`train_network`: the app's worker, no TensorFlow); the NumPy MLP
    (no Keras name) trains in NumPy either way."""
    if engine not in ("tensorflow", "numpy"):
        raise ValueError(f"unknown training engine {engine!r}: 'tensorflow' or 'numpy'")
    if engine == "numpy" or not arch.keras_name:
        return train_network(data, cfg, arch, callback, stop)
    from ..models.keras_tf import build
    return train_keras(data, cfg, lambda: build(arch), callback, stop)


def start_net(arch, seed: int = 0):
    """The network a training starts from: a fresh one of ``arch``
    (:func:`~mnist_core.models.architectures.build_net`), or, for an architecture carrying
    a trained file (:mod:`mnist_core.classroom.finetune`'s warm configs: a non-empty
    ``weights`` field), a copy of that file's network."""
    trained = getattr(arch, "weights", b"")
    if trained:
        return model_from_bytes(trained, arch).network.copy()
    return build_net(arch, seed)


def train_network(data: Dataset, cfg: TrainConfig, arch, callback: Callback | None = None,
                  stop: StopFlag | None = None, engine: EngineConfig = DEFAULT_ENGINE
                  ) -> TrainResult:
    """Train a network of ``arch`` (an architecture config; one carrying a trained file
    starts from it) on ``data`` with ``cfg``, in NumPy, as Keras would train it: the NumPy
    MLP, and the Keras architectures in the app's worker (no TensorFlow). Mini-batches of
    freshly augmented data each epoch, AdamW (or SGD, where the architecture asks) on the
    cosine schedule, label-smoothed cross-entropy, BatchNorm's moving statistics moved
    each step and re-estimated exactly before the last validation row
    (:meth:`~mnist_core.engine.network.Sequential.precise_batchnorm`). The result's
    ``model`` is the :class:`~mnist_core.engine.network.Sequential`."""
    c0 = time.process_time()
    # The training images stay uint8 (converted a batch at a time, to the same floats):
    # 20,000 of them are 16 MB instead of 63 MB in the worker.
    x, y, x_val, y_val = prepare(data, cfg, as_float=False)
    net = start_net(arch, cfg.seed)
    extra = extra_pool(data, cfg)
    steps = int(np.ceil((len(x) + EpochFeeder.extra_count(len(x), cfg, extra)) / cfg.batch_size))
    params = net.params()
    optimizer = (SGD(params, cfg.weight_decay) if getattr(arch, "optimizer", "adam") == "sgd"
                 else AdamW(params, cfg.weight_decay, engine.adam))
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_DROPOUT_STREAM,)))
    ctx = Context(train=True, rng=rng, chunk_bytes=engine.chunk_bytes)
    feeder, t0 = EpochFeeder(x, y, cfg, extra), time.perf_counter()

    def step(xb: np.ndarray, yb: np.ndarray, lr: float) -> tuple[float, np.ndarray]:
        xb = net.batch(to_float(xb) if xb.dtype == np.uint8 else xb)
        loss, logits, grads, caches = net.loss_and_grads(xb, yb, cfg.label_smoothing, ctx)
        net.update_moving_stats(caches)
        del caches  # ~60 MB for the live CNN at 128 images: freed before the next batch
        optimizer.step(grads, lr)
        return loss, logits

    average, unaveraged = WeightAverage(cfg), None

    def precise_bn() -> None:
        if engine.bn_images > 0:
            net.precise_batchnorm(precise_bn_sample(x, cfg, engine),
                                  engine.bn_batch or cfg.batch_size, ctx)

    def before_validation(epoch: int, stopped: bool) -> None:
        nonlocal unaveraged
        take_mean = average.offer(epoch, stopped, lambda: params)
        if not (stopped or epoch == cfg.epochs - 1):
            return
        precise_bn()
        if take_mean:
            unaveraged = net.copy()
            for p, mean in zip(params, average.mean(), strict=True):
                p[...] = mean
            precise_bn()

    blas = tuning.blas_threads(engine.blas_threads)
    try:
        history, stopped = run_epochs(cfg, feeder, steps, step,
                                      lambda xv: net.folded().predict_proba(xv), x_val,
                                      y_val, callback, stop, before_validation, net)
    finally:
        feeder.close()
        blas.unregister()
    return TrainResult(net, history, time.perf_counter() - t0, stopped, time.process_time() - c0,
                       unaveraged)


def run_epochs(cfg: TrainConfig, feeder: "EpochFeeder", steps: int,
               step: Callable[[np.ndarray, np.ndarray, float], tuple[float, np.ndarray]],
               predict: Callable[[np.ndarray], np.ndarray], x_val: np.ndarray,
               y_val: np.ndarray, callback: Callback | None, stop: StopFlag | None,
               before_validation: Callable[[int, bool], None] | None = None, net=None
               ) -> tuple[list[EpochLog], bool]:
    """The epochs of a hand-written training loop (the NumPy MLP's, and the Keras
    architectures' in NumPy): ``steps`` batches an epoch from ``feeder``, each trained by
    ``step(xb, yb, lr)`` (the feeder's rows as they are, the learning rate of the cosine
    schedule :func:`lr_at`), which returns the batch's mean loss and its ``(B, 10)``
    logits; ``"batch"`` events every 20 steps and at the epoch's end, then
    ``before_validation(epoch, stopped)`` (0-based epoch; whether ``stop`` ended it), the
    validation row
    from ``predict(x_val)`` and an ``"epoch"`` event carrying ``net``. ``stop`` ends the training
    after its batch. Returns ``(history, stopped)``."""
    history: list[EpochLog] = []
    stopped, lr = False, cfg.lr
    for epoch in range(cfg.epochs):
        xe, ye = feeder.get(epoch)
        e0, losses, correct, seen = time.perf_counter(), 0.0, 0, 0
        for i in range(steps):
            lr = lr_at(cfg, (epoch + i / steps) / cfg.epochs)
            yb = ye[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            loss, logits = step(xe[i * cfg.batch_size:(i + 1) * cfg.batch_size], yb, lr)
            losses += loss * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(yb)
            if callback and (i % 20 == 0 or i == steps - 1):
                callback("batch", dict(epoch=epoch, step=i + 1, steps=steps, loss=losses / seen,
                                       accuracy=correct / seen, epoch_start=e0))
            if stop is not None and stop.is_set():
                stopped = True
                break
        if before_validation is not None:
            before_validation(epoch, stopped)
        log = epoch_log(epoch, losses, correct, seen, predict(x_val), y_val, e0, lr)
        history.append(log)
        if callback:
            callback("epoch", dict(log=log, model=net))
        if stopped:
            break
    return history, stopped


def epoch_log(epoch: int, losses: float, correct: int, seen: int, p_val: np.ndarray,
              y_val: np.ndarray, started: float, lr: float) -> EpochLog:
    """The history row of epoch ``epoch`` (0-based) of a hand-written loop: ``losses`` and
    ``correct`` summed over the ``seen`` training images, the validation split's ``(n, 10)``
    probabilities ``p_val`` against ``y_val``, the epoch's ``perf_counter`` start and the
    learning rate it ended on."""
    return EpochLog(epoch + 1, losses / max(seen, 1), correct / max(seen, 1),
                    _nll(p_val, y_val), float((p_val.argmax(1) == y_val).mean()),
                    time.perf_counter() - started, float(lr))


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())


# ---------------------------------------------------------------------------------------
# Keras loop
# ---------------------------------------------------------------------------------------

def train_keras(data: Dataset, cfg: TrainConfig, build: Callable[[], object],
                callback: Callback | None = None, stop: StopFlag | None = None) -> TrainResult:
    """Train a Keras model built by ``build()`` with AdamW, per-epoch augmentation and a
    per-batch cosine schedule; reports the same history as :func:`train_network`."""
    import keras

    from ..models.keras_tf import fast_predict_fn

    keras.utils.set_random_seed(cfg.seed)
    c0 = time.process_time()
    x, y, x_val, y_val = prepare(data, cfg)
    model = build()
    extra = extra_pool(data, cfg)
    steps = int(np.ceil((len(x) + EpochFeeder.extra_count(len(x), cfg, extra)) / cfg.batch_size))
    optimizer = keras.optimizers.AdamW(learning_rate=cfg.lr, weight_decay=cfg.weight_decay)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])
    state = dict(epoch=0, e0=0.0, stopped=False)

    class _Hook(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            progress = (state["epoch"] + batch / steps) / cfg.epochs
            self.model.optimizer.learning_rate.assign(lr_at(cfg, progress))

        def on_train_batch_end(self, batch, logs=None):
            if callback and (batch % 20 == 0 or batch == steps - 1):
                callback("batch", dict(epoch=state["epoch"], step=batch + 1, steps=steps,
                                       loss=float(logs["loss"]), accuracy=float(logs["accuracy"]),
                                       epoch_start=state["e0"]))
            if stop is not None and stop.is_set():
                state["stopped"] = True
                self.model.stop_training = True

    feeder, history, t0 = EpochFeeder(x, y, cfg, extra), [], time.perf_counter()
    eye = np.eye(10, dtype=np.float32)
    average, unaveraged = WeightAverage(cfg), None
    try:
        for epoch in range(cfg.epochs):
            state.update(epoch=epoch, e0=time.perf_counter())
            xe, ye = feeder.get(epoch)
            fit = model.fit(np.asarray(xe)[..., None], eye[ye], batch_size=cfg.batch_size,
                            epochs=1, verbose=0, shuffle=False, callbacks=[_Hook()])
            if average.offer(epoch, state["stopped"], model.get_weights):
                unaveraged = keras.models.clone_model(model)
                unaveraged.set_weights(model.get_weights())
                model.set_weights(average.mean())
                keras_precise_batchnorm(model, precise_bn_sample(x, cfg, DEFAULT_ENGINE),
                                        cfg.batch_size)
            predict = fast_predict_fn(model)
            p_val = predict(x_val)
            log = EpochLog(epoch + 1, float(fit.history["loss"][-1]),
                           float(fit.history["accuracy"][-1]), _nll(p_val, y_val),
                           float((p_val.argmax(1) == y_val).mean()),
                           time.perf_counter() - state["e0"],
                           float(model.optimizer.learning_rate.numpy()))
            history.append(log)
            if callback:
                callback("epoch", dict(log=log, model=model))
            if state["stopped"]:
                break
    finally:
        feeder.close()
    return TrainResult(model, history, time.perf_counter() - t0, state["stopped"],
                       time.process_time() - c0, unaveraged)
