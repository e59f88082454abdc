"""Metrics against small hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnist_core.insight.evaluate import (confusion_matrix, log_loss, per_class_scores, score,
                                 time_batch, time_single)

Y_TRUE = np.array([0, 0, 1, 1, 1, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 2])


def test_confusion_matrix_rows_are_truth():
    cm = confusion_matrix(Y_TRUE, Y_PRED, n_classes=3)
    assert cm.dtype == np.int64
    assert cm.tolist() == [[1, 1, 0],
                           [0, 2, 1],
                           [0, 0, 1]]
    assert confusion_matrix(Y_TRUE, Y_PRED).shape == (10, 10)


def test_per_class_scores_by_hand():
    scores = per_class_scores(confusion_matrix(Y_TRUE, Y_PRED, n_classes=3))
    # class 0: tp 1, predicted 1, actual 2; class 1: tp 2, predicted 3, actual 3;
    # class 2: tp 1, predicted 2, actual 1.
    np.testing.assert_allclose(scores["precision"], [1.0, 2 / 3, 0.5])
    np.testing.assert_allclose(scores["recall"], [0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(scores["f1"], [2 / 3, 2 / 3, 2 / 3])


def test_per_class_scores_zero_where_undefined():
    cm = confusion_matrix([0, 0], [0, 1], n_classes=3)  # class 2 never seen nor predicted
    scores = per_class_scores(cm)
    assert scores["precision"] == [1.0, 0.0, 0.0]
    assert scores["recall"] == [0.5, 0.0, 0.0]
    assert scores["f1"][2] == 0.0


def test_log_loss_by_hand_and_clipped():
    probs = np.array([[0.5, 0.5], [0.1, 0.9], [1.0, 0.0]])
    y = np.array([0, 1, 1])
    expected = -(math.log(0.5) + math.log(0.9) + math.log(1e-7)) / 3
    assert log_loss(probs, y) == pytest.approx(expected)


def test_score_summary():
    probs = np.eye(10)[[3, 3, 5, 7]] * 0.9 + 0.01
    y = np.array([3, 4, 5, 7])
    result = score(probs, y)
    assert result["n"] == 4 and result["accuracy"] == 0.75
    assert result["confusion"][4][3] == 1 and sum(map(sum, result["confusion"])) == 4
    assert result["loss"] == pytest.approx(-(3 * math.log(0.91) + math.log(0.01)) / 4)
    assert len(result["precision"]) == len(result["recall"]) == len(result["f1"]) == 10


def test_timers_call_predict_with_the_right_batches():
    sizes = []

    def predict(x):
        sizes.append(len(x))
        return np.zeros((len(x), 10))

    x = np.zeros((7, 28, 28), np.float32)
    assert time_single(predict, x, repeats=5) >= 0
    assert sizes == [1] * 6  # warm-up plus repeats, one image each
    sizes.clear()
    assert time_batch(predict, x) >= 0
    assert sizes == [7, 7]  # warm-up on x[:64], then all of x
