"""How much of each epoch should be real writers? Chosen on held-out writers, not the test set.

    python benchmarks/writers_mix.py --data /path/to/mnist --model numpy --epochs 6 \
        --shares 0 0.15 0.3 [--out benchmarks/WRITERS_MIX.md]

Trains ``--model`` (its shipped architecture and settings, ``--epochs`` shortened) once
per share of real writers' renderings in each epoch (``TrainConfig.writers_share``), and
scores each on what selection may look at: MNIST's validation split (carved from the
training set) and the held-out writers of handwriting-train, drawn on the canvas and
photographed, read as the app reads them (per writer: mean and worst). MNIST's test set
and the dev sets are not looked at here.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import harness as h
from mnist_core.training import writers
from mnist_core.training.train import fit
from mnist_core.datasets.data import load_dataset, split_validation, to_float
from mnist_core.artifacts.registry import REGISTRY


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="MNIST folder (default $MNIST_DATA)")
    ap.add_argument("--writers", default=None, help="handwriting-train folder")
    ap.add_argument("--model", default="numpy", choices=sorted(REGISTRY))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.15, 0.3])
    ap.add_argument("--out", default=str(Path(__file__).with_name("WRITERS_MIX.md")))
    args = ap.parse_args()

    mix = writers.WriterMix()
    data = writers.with_writers(load_dataset(args.data), args.writers, mix,
                                log=lambda line: print(line, file=sys.stderr))
    held = writers.held_out_inputs(args.writers, mix)
    spec = REGISTRY[args.model]
    val = split_validation(data.x_train, data.y_train, spec.train.n_val, spec.train.seed)
    rows = []
    for share in args.shares:
        cfg = replace(spec.train, epochs=args.epochs, writers_share=share)
        t0 = time.perf_counter()
        model = spec.backend.from_net(fit(data, cfg, spec.arch).model, spec)
        seconds = time.perf_counter() - t0
        val_acc = float((model.predict_proba(to_float(val.x_val)).argmax(1) == val.y_val).mean())
        scores = writers.score({args.model: model}, held)
        row = {"share": share, "seconds": seconds, "val": val_acc}
        for name, per_model in scores.items():
            row[name] = per_model[args.model]
        rows.append(row)
        print(f"share {share}: val {val_acc:.4f} " + " ".join(
            f"{n} {row[n]['mean']:.4f} (worst {row[n]['worst']:.4f})" for n in scores),
            file=sys.stderr)

    sets = [n for n in rows[0] if n.startswith("writers-")]
    held_names = writers.split_writers(writers.load(args.writers).writers, mix)[1]
    title = f"Share of real writers in training: {args.model}, {args.epochs} epochs"
    h.write_report(args.out, title, [
        h.measured(h.command("python")) + " Seconds depend on what else ran.", "",
        f"Held-out writers: {', '.join(held_names)} "
        "(never trained on). Each digit drawn once on the canvas and once as a photo.", "",
        *h.table(["writers' share of each epoch", "MNIST validation",
                  *(f"{s}: mean / worst writer" for s in sets), "train s"],
                 [(f"{r['share']:.2f}", f"{100 * r['val']:.2f}%",
                   *(f"{100 * r[s]['mean']:.2f}% / {100 * r[s]['worst']:.2f}%" for s in sets),
                   f"{r['seconds']:.0f}") for r in rows])])
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
