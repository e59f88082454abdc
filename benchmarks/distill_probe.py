"""Probe: does a student learn the CNN's reading from its softened answers (distillation)?

    python benchmarks/distill_probe.py --data ../shared/data/mnist --temperature 4 \
        --hard 0.5 [--student dense] [--teachers artifacts/cnn.keras /tmp/train_seed1/cnn.keras]

Trains ``--student`` (a Keras kind: its shipped architecture and recipe, the same writers'
mix and augmentation as ``train``, one seed) on a mix of the labels (weight ``--hard``,
label-smoothed as the recipe says) and the teachers' mean logits softened by
``--temperature`` (weight ``1 - hard``, times T squared, as Hinton et al. 2015), each
augmented epoch's teacher answers computed on that epoch's own images. Prints the
student's MNIST test accuracy and its readings of the held-out writers and the dev scans
as :mod:`scans_ablation` scores them. A probe for SCANS_TRAINING.md, not a training path of
the app (needs TensorFlow).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import harness as h
import scans_ablation as sa
from mnist_core.artifacts.registry import REGISTRY
from mnist_core.datasets.data import load_dataset, to_float
from mnist_core.training import writers
from mnist_core.training.config import lr_at
from mnist_core.training.feed import EpochFeeder, extra_pool, prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="MNIST folder (default $MNIST_DATA)")
    ap.add_argument("--student", default="dense", choices=["dense", "cnn", "lenet5"])
    ap.add_argument("--teachers", nargs="+", default=[str(h.REPO / "artifacts" / "cnn.keras")])
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--hard", type=float, default=0.5, help="the labels' share of the loss")
    args = ap.parse_args()

    import keras
    import tensorflow as tf

    from mnist_core.models.keras_tf import build, load

    spec, T, hard = REGISTRY[args.student], args.temperature, args.hard
    cfg = spec.train
    base = load_dataset(args.data)
    x, y, record = writers.training_set(None, writers.WriterMix())
    data = replace(base, x_extra=x, y_extra=y, extra_source=record)
    keras.utils.set_random_seed(cfg.seed)
    x, y, x_val, y_val = prepare(data, cfg)
    extra = extra_pool(data, cfg)
    steps = int(np.ceil((len(x) + EpochFeeder.extra_count(len(x), cfg, extra)) / cfg.batch_size))

    def logits(model):  # the same network without its softmax
        model.layers[-1].activation = keras.activations.linear
        return model

    teachers = [logits(load(Path(t))) for t in args.teachers]
    student = logits(build(spec.arch))
    eps = cfg.label_smoothing

    def loss(target, z):
        labels, soft = target[:, :10] * (1 - eps) + eps / 10, target[:, 10:]
        return (hard * keras.losses.categorical_crossentropy(labels, z, from_logits=True)
                + (1 - hard) * T * T * keras.losses.categorical_crossentropy(
                    soft, z / T, from_logits=True))

    student.compile(optimizer=keras.optimizers.AdamW(learning_rate=cfg.lr,
                                                     weight_decay=cfg.weight_decay), loss=loss)
    feeder, eye = EpochFeeder(x, y, cfg, extra), np.eye(10, dtype=np.float32)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        for epoch in range(cfg.epochs):
            xe, ye = feeder.get(epoch)
            xe = np.asarray(xe)[..., None]
            z = np.mean([t.predict(xe, batch_size=1024, verbose=0) for t in teachers], 0)
            soft = tf.nn.softmax(z / T).numpy()

            class Schedule(keras.callbacks.Callback):
                def on_train_batch_begin(self, batch, logs=None, epoch=epoch):
                    self.model.optimizer.learning_rate.assign(
                        lr_at(cfg, (epoch + batch / steps) / cfg.epochs))

            student.fit(xe, np.concatenate([eye[ye], soft], 1), batch_size=cfg.batch_size,
                        epochs=1, verbose=0, shuffle=False, callbacks=[Schedule()])
            val = (student.predict(x_val[..., None], batch_size=1024, verbose=0).argmax(1)
                   == y_val).mean()
            print(f"epoch {epoch + 1}: val {val:.4f} ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
    finally:
        feeder.close()
    student.layers[-1].activation = keras.activations.softmax
    model = spec.backend.from_net(student, spec, arch=spec.arch)

    class Inputs:
        dev_only, writers, dev = False, None, str(sa.DEV_DIR)

    sets = sa.all_inputs(Inputs)
    app = sa.readings([sa.answers(model, args.student, sets)], sets)["app"]
    test = (model.predict_proba(to_float(base.x_test)).argmax(1) == base.y_test).mean()
    print(f"{args.student} T={T:g} hard={hard:g} teachers={len(teachers)}: MNIST test "
          f"{100 * test:.2f}%, " + ", ".join(f"{s} {100 * app[s]:.2f}%" for s in sa.SETS)
          + f"; CPU {time.process_time() - c0:.0f} s")


if __name__ == "__main__":
    main()
