"""The SHIPPED models in artifacts/ reach their accuracy floors on the 10,000 MNIST test images.

Accuracy is measured afresh through ``load_models`` + ``predict_proba`` (never read back from
metrics.json); metrics.json must agree with it. Skipped only when real MNIST is not on this
machine; missing or damaged artifacts are a failure.
"""

from __future__ import annotations


import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS, keras_optimizer_traces
from shipped import Shipped

from mnist_core.datasets.data import load_dataset, to_float
from mnist_core.artifacts.registry import REGISTRY

FLOORS = {"numpy": 0.989, "dense": 0.989, "cnn": 0.996, "lenet5": 0.990}  # issue #11
# Issue #11: all four models trained in at most 40 minutes on 2 cores. Checked on the CPU
# seconds `train` records (all threads), which other work on a shared machine does not
# inflate the way it inflates wall time: 40 minutes of both cores.
MAX_TOTAL_TRAIN_CPU_SECONDS = 2 * 40 * 60


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    data = load_dataset(mnist_dir)
    assert len(data.y_test) == 10_000
    return to_float(data.x_test), data.y_test.astype(np.int64)


SHIPPED = Shipped(SHIPPED_ARTIFACTS, list(FLOORS))


@pytest.mark.parametrize("name", FLOORS)
def test_accuracy_floor(name, mnist_test):
    accuracy = SHIPPED.accuracy(name, mnist_test)
    assert accuracy >= FLOORS[name], (f"{name}: {accuracy:.2%} on the MNIST test set, floor "
                                      f"{FLOORS[name]:.1%}")


@pytest.mark.parametrize("name", FLOORS)
def test_metrics_json_matches_fresh_accuracy(name, mnist_test):
    metrics = SHIPPED.models()[name].metrics
    assert metrics["n"] == 10_000
    assert metrics["accuracy"] == pytest.approx(SHIPPED.accuracy(name, mnist_test), abs=1e-4)


def test_training_time_recorded_and_within_budget(mnist_test):
    from mnist_core.artifacts.files import read_manifest

    seconds = {n: m.metrics.get("train_seconds") for n, m in SHIPPED.models().items()}
    for name, value in seconds.items():
        assert isinstance(value, (int, float)) and value > 0, f"{name}: train_seconds={value!r}"
    entries = read_manifest(SHIPPED_ARTIFACTS)["models"]
    cpu = {n: entries[n].get("train_cpu_seconds") for n in seconds}
    for name, value in cpu.items():
        assert isinstance(value, (int, float)) and value > 0, f"{name}: train_cpu_seconds={value!r}"
    total = sum(cpu.values())
    assert total <= MAX_TOTAL_TRAIN_CPU_SECONDS, f"training took {total:.0f} CPU s in all: {cpu}"


def test_shipped_keras_files_hold_no_optimizer(mnist_test):
    models = SHIPPED.models()
    for name in models:
        if REGISTRY[name].kind == "keras":
            path = SHIPPED_ARTIFACTS / REGISTRY[name].filename
            assert keras_optimizer_traces(path) == [], name


# ---------------------------------------------------------------------------------------
# Writers no model trained on (issue #11): handwriting-train's held-out writers
# ---------------------------------------------------------------------------------------

WRITER_FLOORS = {"numpy": 0.97, "dense": 0.97, "cnn": 0.985}


@pytest.fixture(scope="module")
def held_out_writers():
    from mnist_core.training import writers
    from mnist_core.artifacts.files import read_manifest

    try:
        inputs = writers.held_out_inputs()
    except writers.WritersMissing as exc:
        pytest.skip(f"handwriting-train not on this machine: {exc}")
    record = read_manifest(SHIPPED_ARTIFACTS).get("extra_training_data") or {}
    held = sorted(set(next(iter(inputs.values()))[3].tolist()))
    # The writers scored here are the ones the shipped models were not trained on.
    assert record.get("held_out_writers") == held
    assert not set(held) & set(record.get("training_writers", []))
    return inputs


@pytest.mark.parametrize("name", WRITER_FLOORS)
def test_held_out_writers_floor(name, held_out_writers):
    from mnist_core.training import writers

    scores = writers.score({name: SHIPPED.models()[name]}, held_out_writers)
    for set_name, per_model in scores.items():
        accuracy = per_model[name]["mean"]
        assert accuracy >= WRITER_FLOORS[name], (
            f"{name} on {set_name}: {accuracy:.2%}, floor {WRITER_FLOORS[name]:.1%}")
