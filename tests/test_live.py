"""Live architectures from the registry (mnist_core.classroom.live): Train live's widget values
become the registry's short-run architecture with those values, and a training config."""

from __future__ import annotations

import pickle
from dataclasses import fields

import pytest

from mnist_core.classroom import live
from mnist_core.training.augment import NONE, AugmentConfig
from mnist_core.artifacts.registry import REGISTRY
from mnist_core.training.config import TrainConfig


def test_the_widgets_start_at_the_registrys_short_run():
    for name in live.MLPS:
        start = live.starting_settings(name)
        assert live.numbers(start.hidden) == REGISTRY[name].live_arch.hidden
        assert start.hidden in live.HIDDEN
    cnn = live.starting_settings("cnn")
    assert live.numbers(cnn.filters) == REGISTRY["cnn"].live_arch.filters
    assert cnn.filters in live.FILTERS and cnn.dense in live.DENSE_UNITS
    assert live.LiveSettings().lr == live.DEFAULT_RATE["adam"]
    assert set(live.DEFAULT_RATE.values()) <= set(live.RATES)


def test_an_mlp_takes_its_hidden_layers_and_keeps_the_rest_of_the_registrys():
    chosen = live.LiveSettings(hidden="256, 256", activation="sigmoid", optimizer="sgd", lr=1.0,
                               epochs=2, batch_size=64, n_train=3000, augment=True)
    run = live.live_run("numpy", chosen)
    base = REGISTRY["numpy"].live_arch
    assert type(run.arch) is type(base)
    assert run.arch.hidden == (256, 256)
    assert (run.arch.activation, run.arch.optimizer) == ("sigmoid", "sgd")
    assert run.arch.dropout == base.dropout
    assert run.train == TrainConfig(epochs=2, batch_size=64, lr=1.0, n_train=3000,
                                    augment=AugmentConfig())
    assert run.settings == {"hidden": "256, 256", "activation": "sigmoid", "optimizer": "sgd",
                            "lr": 1.0, "epochs": 2, "batch_size": 64, "n_train": 3000,
                            "augment": True}
    # The Keras dense network has no activation or optimizer widgets: those stay its own.
    dense = live.live_run("dense", chosen)
    assert dense.arch.hidden == (256, 256)
    assert dense.arch.dropout == REGISTRY["dense"].live_arch.dropout
    assert "activation" not in dense.settings and not hasattr(dense.arch, "optimizer")
    assert pickle.loads(pickle.dumps(run.arch)) == run.arch   # it goes to the worker


def test_the_cnn_takes_its_filters_and_classifier_units():
    run = live.live_run("cnn", live.LiveSettings(filters="8, 16", dense=64))
    base = REGISTRY["cnn"].live_arch
    assert (run.arch.filters, run.arch.dense) == ((8, 16), 64)
    assert run.arch.bn_momentum == base.bn_momentum and run.arch.dropout == base.dropout
    assert run.train.augment == NONE and run.train.epochs == live.LiveSettings().epochs
    assert list(run.settings)[:2] == ["filters", "dense"] and "hidden" not in run.settings


def test_every_offered_choice_builds_and_other_models_are_refused():
    for name in live.KINDS:
        for text in (live.HIDDEN if name in live.MLPS else live.FILTERS):
            key = "hidden" if name in live.MLPS else "filters"
            run = live.live_run(name, live.LiveSettings(**{key: text}))
            assert getattr(run.arch, key) == live.numbers(text)
    with pytest.raises(KeyError, match="lenet5"):
        live.live_run("lenet5", live.LiveSettings())
    assert all(f.name for f in fields(live.LiveSettings))
    assert live.spelled((16, 32)) == "16, 32" and live.numbers("16, 32") == (16, 32)
