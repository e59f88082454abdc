"""Adversarial digits: a small change to a digit that makes one model misread it.

Both attacks push the digit uphill on the chosen model's cross-entropy loss
``L(x) = -log p_label(x)``, whose gradient is minus :meth:`Model.input_gradient
<mnist_core.models.model.Model.input_gradient>` (``d log p_label / dx``, by hand in NumPy for every
model: each layer's backward rule in :mod:`mnist_core.engine.layers`), and stay within an L-infinity ball of radius ``epsilon`` around the digit
(no pixel changes by more than ``epsilon``) and within [0, 1]:

* **FGSM** (fast gradient sign, Goodfellow et al. 2015): one step of ``epsilon`` along the
  sign of the gradient.
* **PGD** (projected gradient descent, Madry et al. 2018): :attr:`AttackConfig.steps`
  steps of ``step_size`` along the gradient's sign, each followed by clipping back into
  the ball and into [0, 1].

``label`` is the digit's true label when known, else what the model reads now (the
attack then pushes the digit away from the model's own answer).

Images: ``(28, 28) float32 in [0, 1]``, white ink on black, as the models see them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.model import Model

METHODS = ("fgsm", "pgd")


@dataclass(frozen=True)
class AttackConfig:
    """Defaults of the attacks (the page's slider sets ``epsilon``)."""

    epsilon: float = 0.1     # L-infinity radius: the most any pixel may change (of 1.0)
    steps: int = 10          # PGD's steps
    step_ratio: float = 0.25 # PGD's step as a share of epsilon: 10 steps of 0.25 eps can
                             # cross the ball 2.5 times (Madry et al.'s 2.5 eps / steps)


ATTACK = AttackConfig()


@dataclass
class Attack:
    """An attack's result: ``adversarial`` ``(28, 28) float32 in [0, 1]``; ``perturbation``
    ``(28, 28) float32 in [-epsilon, epsilon]`` (adversarial minus the original); the
    chosen model's loss before and after."""

    adversarial: np.ndarray
    perturbation: np.ndarray
    label: int
    loss_before: float
    loss_after: float


def _image(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).reshape(28, 28)


def loss(model: Model, x: np.ndarray, label: int) -> float:
    """Cross-entropy ``-log p_label`` of ``model`` on one image (one reading, no views)."""
    p = float(model.predict_proba(_image(x)[None])[0, int(label)])
    return float(-np.log(max(p, np.finfo(np.float32).tiny)))


def loss_gradient(model: Model, x: np.ndarray, label: int) -> np.ndarray:
    """``d(-log p_label) / dx`` for one image: ``(28, 28) float32``."""
    return -np.asarray(model.input_gradient(_image(x), int(label)), np.float32).reshape(28, 28)


def fgsm(model: Model, x: np.ndarray, label: int, *, epsilon: float = ATTACK.epsilon
         ) -> np.ndarray:
    """One step of ``epsilon`` along the loss gradient's sign, clipped to [0, 1]."""
    x = _image(x)
    step = epsilon * np.sign(loss_gradient(model, x, label))
    return np.clip(x + step, 0.0, 1.0).astype(np.float32)


def pgd(model: Model, x: np.ndarray, label: int, *, epsilon: float = ATTACK.epsilon,
        steps: int = ATTACK.steps, step_size: float | None = None) -> np.ndarray:
    """``steps`` signed-gradient steps of ``step_size`` (default ``step_ratio *
    epsilon``), each projected back into the ``epsilon`` L-infinity ball around ``x`` and
    into [0, 1]. Starts at ``x`` itself (no random start: the page shows one repeatable
    answer per slider position)."""
    x = _image(x)
    size = ATTACK.step_ratio * epsilon if step_size is None else step_size
    lo, hi = np.maximum(x - epsilon, 0.0), np.minimum(x + epsilon, 1.0)
    adv = x.copy()
    for _ in range(steps):
        adv = np.clip(adv + size * np.sign(loss_gradient(model, adv, label)), lo, hi)
    return adv.astype(np.float32)


def attack(model: Model, x: np.ndarray, label: int | None = None, method: str = "fgsm",
           cfg: AttackConfig = ATTACK) -> Attack:
    """``method`` (``"fgsm"`` or ``"pgd"``) against ``model`` on ``x``; ``label`` None
    attacks the model's own answer."""
    if method not in METHODS:
        raise ValueError(f"unknown attack {method!r}; known: {', '.join(METHODS)}")
    x = _image(x)
    if label is None:
        label = int(model.predict_proba(x[None])[0].argmax())
    if method == "fgsm":
        adv = fgsm(model, x, label, epsilon=cfg.epsilon)
    else:
        adv = pgd(model, x, label, epsilon=cfg.epsilon, steps=cfg.steps,
                  step_size=cfg.step_ratio * cfg.epsilon)
    return Attack(adv, adv - x, int(label), loss(model, x, label), loss(model, adv, label))
