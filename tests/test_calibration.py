"""Temperature scaling: the fit lowers the validation NLL and ECE (synthetic miscalibrated
scores and the shipped models on real MNIST), never changes an answer, is stored with the
model and applied on load; a damaged record is a clear ArtifactError."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import app_helpers as h
from mnist_core.insight import calibration as cal
from mnist_core.artifacts.files import (ArtifactError, load_model, load_models, manifest_or_empty,
                                  write_json, write_manifest)
from mnist_core.cli import main
from mnist_core.datasets.data import load_dataset, to_float
from mnist_core.models.model import temper

from conftest import SHIPPED_ARTIFACTS


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def miscalibrated(n: int = 20_000, sharpen: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(logits) (calibrated by construction), scored by
    softmax(sharpen * logits): overconfident when ``sharpen > 1``; the right T is ``sharpen``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (n, 10))
    p = _softmax(logits)
    labels = (rng.random((n, 1)) > np.cumsum(p, 1)).sum(1)
    return _softmax(sharpen * logits).astype(np.float32), labels


# ---------------------------------------------------------------------------------------
# The measures and the fit
# ---------------------------------------------------------------------------------------

def test_temper_is_softmax_of_scaled_logits_and_keeps_the_answer():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 4, (500, 10))
    p = _softmax(logits).astype(np.float32)
    for t in (0.3, 0.62, 1.7, 8.0):
        q = temper(p, t)
        assert q.dtype == np.float32
        np.testing.assert_allclose(q, _softmax(logits / t), atol=2e-6)
        assert np.array_equal(q.argmax(1), p.argmax(1))
    assert temper(p, 1.0) is p


@pytest.mark.parametrize("sharpen", [3.0, 0.4])   # over- and underconfident
def test_fit_recovers_the_temperature_and_lowers_nll_and_ece(sharpen):
    probs, labels = miscalibrated(sharpen=sharpen)
    t = cal.fit_temperature(probs, labels)
    assert t == pytest.approx(sharpen, rel=0.08)
    fixed = temper(probs, t)
    assert cal.nll(fixed, labels) < cal.nll(probs, labels) - 0.05
    before, after = (cal.expected_calibration_error(p, labels) for p in (probs, fixed))
    assert after < 0.02 < before


def test_reliability_bins_count_confidence_and_accuracy():
    probs = np.array([[0.95, 0.05] + [0] * 8, [0.9, 0.1] + [0] * 8,
                      [0.1, 0.55, 0.35] + [0] * 7, [0.3] * 3 + [0.1] * 1 + [0] * 6])
    labels = np.array([0, 1, 1, 0])
    r = cal.reliability(probs, labels, n_bins=10)
    bins = r["bins"]
    assert bins["count"] == [0, 0, 1, 0, 0, 1, 0, 0, 0, 2]
    assert bins["confidence"][9] == pytest.approx(0.925) and bins["accuracy"][9] == 0.5
    assert bins["accuracy"][5] == 1.0 and bins["confidence"][2] == pytest.approx(0.3)
    assert bins["confidence"][0] is None
    # |0.5 - 0.925| * 2/4 + |1 - 0.55| / 4 + |1 - 0.3| / 4 (argmax of a tie: class 0, right)
    assert r["ece"] == pytest.approx(0.2125 + 0.1125 + 0.175)
    assert r["accuracy"] == 0.75 and r["n"] == 4


def test_view_probs_average_as_the_app_reads(artifacts):
    from mnist_core.reading.inference import read_input
    from mnist_core.models.views import DEFAULT_VIEWS

    models = load_models(artifacts)
    x = to_float(np.load(artifacts / "gallery.npz")["images"][:6])
    for name, model in models.items():
        model.views = DEFAULT_VIEWS
        vp = cal.view_probs(model, x)
        np.testing.assert_allclose(vp.averaged(model.temperature), read_input(x, {name: model})[name],
                                   atol=1e-5)


# ---------------------------------------------------------------------------------------
# Stored with the model, applied on load
# ---------------------------------------------------------------------------------------

def test_training_writes_the_record_the_calibration_functions_compute(artifacts):
    data = h.small_dataset()
    for name, model in load_models(artifacts).items():
        stored = model.metrics["calibration"]
        assert model.temperature == stored["temperature"] != 1.0
        again = cal.calibration_record(model, data, 500, 0)
        assert json.dumps(again, sort_keys=True) == json.dumps(stored, sort_keys=True)
        x = to_float(data.x_test[:200])
        raw = cal.untempered(model).predict_proba(x)
        np.testing.assert_allclose(model.predict_proba(x), temper(raw, model.temperature),
                                   atol=1e-6)
        assert np.array_equal(model.predict_proba(x).argmax(1), raw.argmax(1))


def test_cli_calibrate_rewrites_records_and_hashes(artifacts, tmp_path, mnist_dir):
    folder = shutil.copytree(artifacts, tmp_path / "a")
    for name in ("numpy", "lenet5"):   # as shipped before calibration existed
        metrics = json.loads((folder / f"{name}.metrics.json").read_text())
        metrics.pop("calibration")
        write_json(folder, f"{name}.metrics.json", metrics)
    write_manifest(folder, {k: v for k, v in manifest_or_empty(folder).items()
                            if k not in ("files", "versions")})
    assert all(m.temperature == 1.0 for m in load_models(folder).values())
    assert main(["calibrate", "--data", str(mnist_dir), "--artifacts", str(folder),
                 "--handwriting", ""]) == 0
    for name, model in load_models(folder).items():   # hashes match: it loads
        rec = model.metrics["calibration"]
        assert model.temperature == rec["temperature"]
        assert rec["val"]["n"] == 500 and rec["val"]["nll_after"] <= rec["val"]["nll_before"]
        assert rec["sets"][cal.MNIST_TEST]["n"] == 10_000


def _damage(folder, change) -> None:
    metrics = json.loads((folder / "numpy.metrics.json").read_text())
    change(metrics["calibration"])
    write_json(folder, "numpy.metrics.json", metrics)
    write_manifest(folder, {k: v for k, v in manifest_or_empty(folder).items()
                            if k not in ("files", "versions")})


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(temperature="hot"), "'temperature' should be a positive number"),
    (lambda r: r.update(temperature=-1.0), "'temperature' should be a positive number"),
    (lambda r: r.pop("sets"), "'sets' is missing"),
    (lambda r: r["sets"]["mnist-test"].update(ece_after=7), "'ece_after' should be a number"),
    (lambda r: r["sets"]["mnist-test"]["before"]["count"].pop(), "'count' should be 15 bin"),
    (lambda r: r["sets"]["mnist-test"]["after"].update(accuracy=[2.0] * 15),
     "'after': 'accuracy' should be 15 bin values"),
])
def test_a_damaged_record_is_a_clear_artifact_error(artifacts, tmp_path, change, message):
    folder = shutil.copytree(artifacts, tmp_path / "a")
    _damage(folder, change)
    with pytest.raises(ArtifactError) as err:
        load_model("numpy", folder)
    text = str(err.value)
    assert "numpy.metrics.json" in text and "'calibration'" in text and message in text
    assert "python -m mnist_core" in text


# ---------------------------------------------------------------------------------------
# The shipped models on real MNIST
# ---------------------------------------------------------------------------------------

def test_shipped_temperatures_lower_the_validation_nll_and_ece(mnist_dir):
    data = load_dataset(mnist_dir)
    manifest = manifest_or_empty(SHIPPED_ARTIFACTS)
    for name in ("numpy", "dense"):
        model = load_model(name, SHIPPED_ARTIFACTS)
        rec = model.metrics.get("calibration")
        assert rec is not None, f"{name}: run python -m mnist_core calibrate"
        cfg = manifest["models"][name]["train_config"]
        x_val, y_val = cal.validation_split(data, cfg["n_val"], cfg["seed"])
        raw = cal.untempered(model).predict_proba(x_val)
        tempered = model.predict_proba(x_val)
        assert np.array_equal(raw.argmax(1), tempered.argmax(1))
        assert cal.nll(tempered, y_val) < cal.nll(raw, y_val)
        assert (cal.expected_calibration_error(tempered, y_val)
                < cal.expected_calibration_error(raw, y_val))
        assert cal.nll(tempered, y_val) == pytest.approx(rec["val"]["nll_after"], abs=1e-5)
