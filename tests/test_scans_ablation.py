"""The scans ablation's arithmetic: a seed ensemble's score and a recipe's mean over seeds
(benchmarks/scans_ablation.py; SCANS_TRAINING.md is written from it)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import scans_ablation  # noqa: E402  (a script's module, found on the path set above)


def _onehot(labels, n=10):
    return np.eye(n, dtype=np.float32)[labels]


def test_an_ensemble_is_scored_on_the_mean_of_its_probabilities():
    labels = np.array([0, 1, 2, 3])
    found = np.array([True, True, True, False])  # the last was no digit: a miss
    inputs = {"usps": (np.zeros((4, 28, 28), np.float32), found, labels)}
    a = 0.6 * _onehot([0, 1, 5, 3]) + 0.4 * _onehot([9, 9, 2, 3])  # wrong on the third
    b = 0.4 * _onehot([0, 7, 5, 3]) + 0.6 * _onehot([0, 1, 2, 3])  # wrong on the second
    alone = scans_ablation.score({"usps": a}, inputs, {})
    together = scans_ablation.score({"usps": (a + b) / 2}, inputs, {})
    assert alone["usps"] == 0.5 and alone["usps confusions"] == {"2->5": 1, "3->-": 1}
    assert together["usps"] == 0.75 and together["usps confusions"] == {"3->-": 1}


def _row(recipe, seed, usps, test=None):
    app = {s: 0.99 for s in scans_ablation.SETS} | {"usps": usps}
    row = {"run": f"{recipe} seed {seed}", "recipe": recipe, "seed": seed, "model": "cnn",
           "val": 0.99, "readings": {"app": app}}
    return row | ({"test": test} if test is not None else {})


def test_a_recipe_trained_with_several_seeds_gets_its_mean_and_spread():
    rows = [_row("base", 0, 0.97), _row("base", 1, 0.98), _row("base", 2, 0.975),
            _row("scans", 0, 0.99),                       # one seed: no mean
            {"run": "old", "model": "cnn", "readings": {}}]  # a row from before seeds
    (line,) = scans_ablation.seed_means(rows)
    recipe, model, seeds, val, test, canvas, photo, usps, semeion = line
    assert (recipe, model, seeds) == ("base", "cnn", "0 1 2")
    assert usps == "97.50% (1.00)" and val == "99.00% (0.00)"
    assert test == "-"                # no seed was scored on the test set


def test_a_seed_scored_twice_counts_once():
    rows = [_row("train", 0, 0.97, 0.996), _row("train", 0, 0.97, 0.996),
            _row("train", 1, 0.99, 0.994)]
    (line,) = scans_ablation.seed_means(rows)
    assert line[2] == "0 1" and line[7] == "98.00% (2.00)" and line[4] == "99.50% (0.20)"


def test_deskew_stands_a_slanted_stroke_upright_and_keeps_its_ink():
    import cv2
    import deskew_probe

    slanted = np.zeros((28, 28), np.float32)
    cv2.line(slanted, (18, 4), (10, 23), 1.0, 2)   # a 1 leaning right
    upright = deskew_probe.deskew(slanted)
    before, after = cv2.moments(slanted), cv2.moments(upright)
    assert abs(before["mu11"] / before["mu02"]) > 0.3
    assert abs(after["mu11"] / after["mu02"]) < 0.05          # no slant left
    assert abs(after["m00"] / before["m00"] - 1) < 0.05          # the ink is all there
    assert abs(after["m10"] / after["m00"] - before["m10"] / before["m00"]) < 0.5  # not moved
    assert upright.shape == (28, 28) and 0 <= upright.min() and upright.max() <= 1
    blank = np.zeros((28, 28), np.float32)
    assert deskew_probe.deskew(blank) is blank
