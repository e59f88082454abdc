"""Adversarial digits (mnist_core/adversarial.py): the loss gradient, FGSM, PGD's bounds."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS

from mnist_core.insight import adversarial
from mnist_core.models.architectures import NumpyConfig
from mnist_core.artifacts.files import load_gallery, load_models
from mnist_core.datasets.data import to_float
from mnist_core.artifacts.registry import REGISTRY


@pytest.fixture(scope="module")
def shipped():
    return load_models(SHIPPED_ARTIFACTS, ["numpy", "lenet5"])


@pytest.fixture(scope="module")
def digits():
    """20 shipped test digits the NumPy MLP reads right, with their labels."""
    gallery = load_gallery(SHIPPED_ARTIFACTS)
    rows = np.flatnonzero(gallery.sample & (gallery.preds["numpy"] == gallery.labels))[:20]
    return to_float(gallery.images[rows]), gallery.labels[rows].astype(int)


def test_loss_gradient_matches_finite_differences():
    """The hand-written backward pass, as the attacks use it (the gradient of the
    cross-entropy, minus the log-probability's), against central differences of the loss."""
    model = REGISTRY["numpy"].build(NumpyConfig(hidden=(32, 16), dropout=0.0))
    x = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    label, eps = 4, 1e-2
    grad = adversarial.loss_gradient(model, x, label)
    assert grad.shape == (28, 28) and grad.dtype == np.float32
    for r, c in [(3, 7), (14, 14), (20, 5), (25, 24), (10, 18)]:
        up, down = x.copy(), x.copy()
        up[r, c] += eps
        down[r, c] -= eps
        numeric = (adversarial.loss(model, up, label)
                   - adversarial.loss(model, down, label)) / (2 * eps)
        assert grad[r, c] == pytest.approx(numeric, rel=0.05, abs=1e-4), (r, c)


def test_fgsm_raises_the_numpy_mlps_loss(shipped, digits):
    model = shipped["numpy"]
    fooled = 0
    for x, y in zip(*digits):
        adv = adversarial.fgsm(model, x, y, epsilon=0.1)
        assert adversarial.loss(model, adv, y) > adversarial.loss(model, x, y)
        fooled += int(model.predict_proba(adv[None])[0].argmax() != y)
    # A stronger step fools it on most digits (the point of the page).
    strong = [adversarial.fgsm(model, x, y, epsilon=0.25) for x, y in zip(*digits)]
    wrong = (model.predict_proba(np.stack(strong)).argmax(1) != digits[1]).mean()
    assert wrong >= 0.5, wrong


def test_fgsm_against_a_keras_model_raises_its_loss(shipped, digits):
    model = shipped["lenet5"]
    for x, y in list(zip(*digits))[:5]:
        adv = adversarial.fgsm(model, x, y, epsilon=0.1)
        assert adversarial.loss(model, adv, y) > adversarial.loss(model, x, y)


@pytest.mark.parametrize("epsilon", [0.05, 0.2])
def test_pgd_stays_in_the_ball_and_in_range_and_beats_fgsm(shipped, digits, epsilon):
    model = shipped["numpy"]
    fgsm_loss, pgd_loss = [], []
    for x, y in list(zip(*digits))[:8]:
        adv = adversarial.pgd(model, x, y, epsilon=epsilon, steps=10)
        assert adv.dtype == np.float32 and adv.shape == (28, 28)
        assert np.abs(adv - x).max() <= epsilon + 1e-6
        assert adv.min() >= 0.0 and adv.max() <= 1.0
        assert np.abs(adv - x).max() > epsilon / 2  # it did move
        pgd_loss.append(adversarial.loss(model, adv, y))
        fgsm_loss.append(adversarial.loss(model, adversarial.fgsm(model, x, y, epsilon=epsilon), y))
    assert np.mean(pgd_loss) > np.mean(fgsm_loss)


def test_attack_record_and_own_answer(shipped, digits):
    model = shipped["numpy"]
    x, y = digits[0][0], int(digits[1][0])
    result = adversarial.attack(model, x, None, "pgd",
                                adversarial.AttackConfig(epsilon=0.15, steps=5))
    assert result.label == y  # the model's own answer (it reads this digit right)
    assert result.loss_after > result.loss_before
    np.testing.assert_allclose(result.adversarial - x, result.perturbation, atol=1e-6)
    assert np.abs(result.perturbation).max() <= 0.15 + 1e-6
    with pytest.raises(ValueError, match="unknown attack"):
        adversarial.attack(model, x, y, "deepfool")
