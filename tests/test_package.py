"""train_and_package: each file written once, each model's test set predicted once, models
kept in memory without a folder, earlier models kept in the folder."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from conftest import tiny_train_config

from mnist_core import package, worker
from mnist_core.models.architectures import from_manifest
from mnist_core.artifacts.files import load_gallery, load_models, read_manifest, sha256
from mnist_core.datasets.data import to_float
from mnist_core.models.model import KerasModel, Model, NumpyModel
from mnist_core.artifacts.registry import REGISTRY
from mnist_core.training.config import EpochLog, StopFlag

NAMES = ["numpy", "lenet5"]


def one_epoch(spec):
    return tiny_train_config(epochs=1, seed=spec.train.seed)


def live(spec):
    return spec.live_arch


@pytest.fixture
def spy(monkeypatch):
    """Counts every write of train_and_package and every batch each model predicts."""
    calls: Counter = Counter()
    batches: list[tuple[str, int]] = []

    def counting(key, real):
        def wrapper(*args, **kwargs):
            calls[key(*args, **kwargs)] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(package, "write_manifest",
                        counting(lambda out, info: "manifest.json", package.write_manifest))
    monkeypatch.setattr(package, "write_json",
                        counting(lambda out, filename, payload: filename, package.write_json))
    monkeypatch.setattr(package, "write_gallery",
                        counting(lambda out, data, preds: "gallery.npz", package.write_gallery))
    monkeypatch.setattr(Model, "save", counting(lambda self, path: path.name, Model.save))
    for backend in (NumpyModel, KerasModel):
        real = backend.predict_proba

        def predict(self, x, real=real):
            batches.append((self.name, len(x)))
            return real(self, x)
        monkeypatch.setattr(backend, "predict_proba", predict)
    return calls, batches


def test_writes_each_file_once_and_predicts_the_test_set_once(tmp_path, tiny_dataset, spy):
    calls, batches = spy
    events = []
    out = tmp_path / "artifacts"
    trained = package.train_and_package(
        NAMES, tiny_dataset, out, train_cfg=one_epoch, arch=live, command="pytest run",
        callback_for=lambda name, cfg: lambda e, info: events.append((name, e)))

    written = {f"{n}.{k}.json" for n in NAMES for k in ("history", "metrics")} | {
        "numpy.npz", "lenet5.keras", "gallery.npz", "manifest.json"}
    assert dict(calls) == {name: 1 for name in written}
    maps = {f"{n}.map.npz" for n in NAMES} | {"digits.map.npz"}  # written by the embedding
    assert {p.name for p in out.iterdir()} == written | maps
    n_test = len(tiny_dataset.y_test)
    for name in NAMES:  # once for metrics and gallery alike
        assert batches.count((name, n_test)) == 1, name
    assert ("numpy", "evaluate") in events and ("lenet5", "batch") in events

    manifest = read_manifest(out)
    assert all(sha256(out / f) == h for f, h in manifest["files"].items())
    assert list(manifest["models"]) == NAMES and manifest["command"] == "pytest run"
    gallery = load_gallery(out)
    loaded = load_models(out)
    x_gallery = to_float(gallery.images)
    for name, record in trained.items():
        entry = manifest["models"][name]
        assert from_manifest(entry["arch"]) == REGISTRY[name].live_arch == record.model.arch
        assert entry["epochs"] == entry["train_config"]["epochs"] == len(record.history) == 1
        assert entry["command"] == "pytest run" and not record.stopped_early
        assert json.loads((out / f"{name}.metrics.json").read_text()) == record.metrics
        assert record.model.metrics == record.metrics and len(record.model.history) == 1
        assert record.metrics["file_bytes"] == (out / REGISTRY[name].filename).stat().st_size
        # The gallery holds the answers of the model in memory, and the files load to it.
        np.testing.assert_array_equal(gallery.preds[name],
                                      record.model.predict_proba(x_gallery).argmax(1))
        np.testing.assert_array_equal(loaded[name].predict_proba(x_gallery),
                                      record.model.predict_proba(x_gallery))
        assert loaded[name].to_bytes() == record.model.to_bytes()


def test_without_a_folder_it_only_trains_and_evaluates(tiny_dataset, spy, tmp_path):
    calls, batches = spy
    trained = package.train_and_package(["numpy"], tiny_dataset, train_cfg=one_epoch, arch=live)
    assert not calls  # nothing saved, no manifest, no gallery
    record = trained["numpy"]
    assert batches.count(("numpy", len(tiny_dataset.y_test))) == 1
    assert 0 <= record.metrics["accuracy"] <= 1 and record.metrics["params"] > 0
    assert record.metrics["file_bytes"] == len(record.model.to_bytes())
    mine = record.model.renamed("yours", "Your model")
    assert mine.metrics["accuracy"] == record.metrics["accuracy"] and mine.title == "Your model"
    path = tmp_path / f"mine{mine.file_ext}"
    path.write_bytes(mine.to_bytes())
    again = REGISTRY["numpy"].backend.load(path, REGISTRY["numpy"])
    x = to_float(tiny_dataset.x_test[:20])
    np.testing.assert_array_equal(again.predict_proba(x), record.model.predict_proba(x))


def test_stop_ends_training_and_trains_no_further_model(tiny_dataset):
    stop = StopFlag()

    def callback_for(name, cfg):
        return lambda event, info: stop.set() if event == "batch" else None

    trained = package.train_and_package(["numpy", "lenet5"], tiny_dataset, stop=stop,
                                        train_cfg=one_epoch, arch=live, epochs=3,
                                        callback_for=callback_for)
    assert list(trained) == ["numpy"]
    assert trained["numpy"].stopped_early and len(trained["numpy"].history) == 1
    assert "accuracy" in trained["numpy"].metrics  # evaluated even so


def test_models_not_retrained_keep_their_entries_and_gallery_answers(tmp_path, tiny_dataset,
                                                                     spy):
    calls, batches = spy
    out = tmp_path / "artifacts"
    package.train_and_package(NAMES, tiny_dataset, out, train_cfg=one_epoch, arch=live,
                              command="first run")
    before = read_manifest(out)
    calls.clear()
    batches.clear()
    package.train_and_package(["numpy"], tiny_dataset, out, arch=live, command="second run",
                              train_cfg=lambda spec: tiny_train_config(epochs=1, seed=5))
    after = read_manifest(out)
    assert list(after["models"]) == NAMES
    assert after["models"]["lenet5"] == before["models"]["lenet5"]  # command included
    assert after["models"]["numpy"]["command"] == "second run"
    assert after["files"]["lenet5.keras"] == before["files"]["lenet5.keras"]
    assert after["files"]["numpy.npz"] != before["files"]["numpy.npz"]
    assert calls["manifest.json"] == calls["gallery.npz"] == 1 and "lenet5.keras" not in calls
    n_test = len(tiny_dataset.y_test)
    assert batches.count(("lenet5", n_test)) == batches.count(("numpy", n_test)) == 1
    gallery = load_gallery(out)
    loaded = load_models(out)
    for name in NAMES:
        np.testing.assert_array_equal(
            gallery.preds[name], loaded[name].predict_proba(to_float(gallery.images)).argmax(1))


# ---------------------------------------------------------------------------------------
# In a worker process (Train live)
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["numpy", "lenet5"])
def test_train_in_worker_streams_events_and_returns_the_model(tiny_dataset, name):
    events = []
    spec = REGISTRY[name]
    record = worker.train_in_worker(name, tiny_dataset, train_cfg=tiny_train_config(),
                                     arch=spec.live_arch,
                                     callback=lambda event, info: events.append((event, info)))
    kinds = [e for e, _ in events]
    assert kinds[0] == "batch" and kinds[-1] == "evaluate" and kinds.count("epoch") == 2
    logs = [info["log"] for e, info in events if e == "epoch"]
    assert all(isinstance(log, EpochLog) for log in logs) and record.history == logs
    assert {"epoch", "step", "steps", "loss", "accuracy"} <= set(events[0][1])
    model = record.model
    assert isinstance(model, spec.backend) and model.name == name and model.arch == spec.live_arch
    assert model.history == [vars(log) for log in logs] and not record.stopped_early
    assert model.metrics == record.metrics and record.metrics["file_bytes"] == len(model.to_bytes())
    # The model read back scores what the worker scored.
    probs = model.predict_proba(to_float(tiny_dataset.x_test))
    assert (probs.argmax(1) == tiny_dataset.y_test).mean() == pytest.approx(
        record.metrics["accuracy"])


@pytest.mark.parametrize("name", ["numpy", "dense"])
def test_the_worker_keeps_blas_on_one_thread(tiny_dataset, name, worker_payloads):
    """OpenBLAS's threads spin waiting for a busy core: with both cores busy, Train live's
    default NumPy MLP run took 9-12 s on two BLAS threads and 0.6 s on one."""
    worker.train_in_worker(name, tiny_dataset, train_cfg=tiny_train_config(),
                            arch=REGISTRY[name].live_arch)
    assert worker_payloads[0]["blas_threads"] == 1


def test_train_in_worker_stops_when_asked_and_still_scores(tiny_dataset):
    stop = StopFlag()

    def callback(event, info):
        if event == "batch":
            stop.set()

    record = worker.train_in_worker("numpy", tiny_dataset, stop=stop, callback=callback,
                                     train_cfg=tiny_train_config(epochs=50, batch_size=8),
                                     arch=REGISTRY["numpy"].live_arch)
    assert record.stopped_early and 1 <= len(record.history) < 50
    assert "accuracy" in record.metrics


def test_train_in_worker_errors_are_one_line(tiny_dataset):
    with pytest.raises(worker.WorkerError, match=r"^ZeroDivisionError: .*division by zero$"):
        worker.train_in_worker("numpy", tiny_dataset, arch=REGISTRY["numpy"].live_arch,
                                train_cfg=tiny_train_config(batch_size=0))


def test_load_dataset_in_worker(tmp_path, tiny_dataset):
    from mnist_core.datasets.common import DataError
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=tiny_dataset.x_train, y_train=tiny_dataset.y_train,
             x_test=tiny_dataset.x_test, y_test=tiny_dataset.y_test)
    data = worker.load_dataset_in_worker(path)
    np.testing.assert_array_equal(data.x_train, tiny_dataset.x_train)
    with pytest.raises(DataError, match="nowhere"):
        worker.load_dataset_in_worker(tmp_path / "nowhere")


def test_the_worker_reads_a_dataset_source_itself(tmp_path, tiny_dataset):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=tiny_dataset.x_train, y_train=tiny_dataset.y_train,
             x_test=tiny_dataset.x_test, y_test=tiny_dataset.y_test)
    cfg, arch = tiny_train_config(), REGISTRY["numpy"].live_arch
    by_source = worker.train_in_worker("numpy", worker.DatasetSource(str(path)),
                                       train_cfg=cfg, arch=arch)
    by_arrays = worker.train_in_worker("numpy", tiny_dataset, train_cfg=cfg, arch=arch)
    assert by_source.metrics["n"] == len(tiny_dataset.y_test)
    assert by_source.metrics["accuracy"] == by_arrays.metrics["accuracy"]
    assert [vars(e)["val_loss"] for e in by_source.history] == \
        [vars(e)["val_loss"] for e in by_arrays.history]
    from mnist_core.datasets.common import DataError
    with pytest.raises(DataError, match="nowhere"):
        worker.train_in_worker("numpy", worker.DatasetSource(str(tmp_path / "nowhere")),
                               train_cfg=cfg, arch=arch)


def test_a_stop_before_the_worker_starts_still_gives_a_model(tiny_dataset):
    stop = StopFlag()
    stop.set()
    record = worker.train_in_worker("numpy", tiny_dataset, stop=stop,
                                     train_cfg=tiny_train_config(epochs=5),
                                     arch=REGISTRY["numpy"].live_arch)
    assert record.stopped_early and len(record.history) == 1


@pytest.mark.parametrize("name", ["numpy", "cnn"])
def test_train_in_worker_fits_the_temperature_on_the_runs_validation_split(tiny_dataset, name):
    """Train live's and Teach's models are tempered as the shipped ones are: T fitted in
    the worker on the images the history's validation rows were scored on."""
    from mnist_core.artifacts.files import metrics_problem
    from mnist_core.insight.calibration import fit_temperature, untempered, validation_split
    from mnist_core.insight.evaluate import log_loss
    from mnist_core.models.model import temper

    cfg = tiny_train_config(epochs=2)
    record = worker.train_in_worker(name, tiny_dataset, train_cfg=cfg,
                                     arch=REGISTRY[name].live_arch)
    model, calibration = record.model, record.metrics["calibration"]
    assert model.temperature == calibration["temperature"] != 1.0
    assert model.metrics["calibration"] == calibration and metrics_problem(model.metrics) is None
    assert calibration["fit_on"] == "validation split (100 training images, seed 0)"
    # The same images and the same (final) network as the history's last validation row.
    x_val, y_val = validation_split(tiny_dataset, cfg.n_val, cfg.seed)
    raw = untempered(model).predict_proba(x_val)
    assert calibration["val"]["n"] == len(y_val) == 100
    assert calibration["val"]["nll_before"] == pytest.approx(record.history[-1].val_loss, abs=1e-5)
    assert calibration["val"]["nll_after"] <= calibration["val"]["nll_before"]
    assert calibration["temperature"] == pytest.approx(fit_temperature(raw, y_val), rel=1e-4)
    # Its percentages are tempered once; the test-set metrics are the network's own.
    x = to_float(tiny_dataset.x_test)
    np.testing.assert_allclose(model.predict_proba(x),
                               temper(untempered(model).predict_proba(x), model.temperature),
                               atol=1e-6)
    assert record.metrics["loss"] == pytest.approx(
        log_loss(untempered(model).predict_proba(x), tiny_dataset.y_test), abs=1e-5)
    # "Your model" (Train live) and "Class model" (Teach) keep it under their new names.
    assert model.renamed("yours", "Your model").temperature == model.temperature
