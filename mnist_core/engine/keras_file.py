"""A ``.keras`` file <-> a :class:`~mnist_core.engine.network.Sequential`, without Keras.

A ``.keras`` file is a zip of ``config.json`` (the model's serialized config),
``model.weights.h5`` (one ``vars`` group per layer, under
``layers/<class in snake case>[_k]``: Keras names the groups by class and order, not by
layer name) and ``metadata.json``. Reading builds only the layer kinds in
:data:`~mnist_core.engine.layers.LAYERS` and refuses everything else, so a file never
runs code (as Keras's ``safe_mode``). Writing lays the file out as Keras 3 does; Keras
loads it with ``safe_mode`` (tests hold it to that).
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .layers import LAYERS, Layer
from .network import Sequential, snake_case

_FLOAT32 = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
            "registered_name": None}
# Inflated size limits: the shipped CNN's weights are ~2 MB; a zip that inflates beyond
# these is refused before it is read.
MAX_CONFIG_BYTES = 1 * 2**20
MAX_WEIGHTS_BYTES = 256 * 2**20


def _groups(layers: list[Layer]):
    """Each layer with its weight group's name in ``model.weights.h5``."""
    seen: dict[str, int] = {}
    for layer in layers:
        snake = snake_case(layer.kind)
        k = seen.get(snake, 0)
        seen[snake] = k + 1
        yield layer, f"layers/{snake}" + (f"_{k}" if k else "")


def read(source: str | Path | bytes | BinaryIO) -> Sequential:
    """The network of a ``.keras`` file (a path, its bytes or an open file); raises
    ``ValueError`` for anything this project does not build."""
    import h5py

    where = str(source) if isinstance(source, (str, Path)) else "the .keras file"
    data = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with zipfile.ZipFile(data) as archive:
            sizes = {i.filename: i.file_size for i in archive.infolist()}
            if sizes.get("config.json", 0) > MAX_CONFIG_BYTES or \
                    sizes.get("model.weights.h5", 0) > MAX_WEIGHTS_BYTES:
                raise ValueError(f"{where}: too large for a model of this project")
            config = json.loads(archive.read("config.json"))
            blob = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: not a readable .keras file ({exc})") from exc
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        found = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{where}: expected a Sequential model, found {found}")
    input_shape, layers = None, []
    try:
        for spec in config["config"]["layers"]:
            kind, cfg = spec["class_name"], spec["config"]
            if kind == "InputLayer":
                shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
                input_shape = tuple(int(v) for v in shape[1:])
                continue
            if kind not in LAYERS:
                raise ValueError(f"layer type {kind} is not supported")
            layer = LAYERS[kind].from_keras(cfg)
            layer.name = str(cfg.get("name", ""))
            layers.append(layer)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{where}: malformed config.json ({exc!r})") from exc
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    if input_shape is None:
        raise ValueError(f"{where}: no input shape in the config")
    with h5py.File(io.BytesIO(blob), "r") as h5:
        for layer, group in _groups(layers):
            weights = []
            if group in h5 and "vars" in h5[group]:
                vars_ = h5[group]["vars"]
                weights = [np.asarray(vars_[str(i)], np.float32) for i in range(len(vars_))]
            try:
                layer.set_weights(weights)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from exc
    net = Sequential(layers, input_shape, config["config"].get("name", ""))
    shape = net.input_shape
    for layer in layers:  # every weight the shape its layer needs
        want, got = layer.weight_shapes(shape), [tuple(w.shape) for w in layer.weights]
        if got != [tuple(w) for w in want]:
            raise ValueError(f"{where}: {layer.kind} {layer.name!r} has weights of shape "
                             f"{got}, expected {want}")
        shape = layer.out_shape(shape)
    return net


def model_config(net: Sequential) -> dict:
    """The model's ``config.json``, as Keras 3 serializes a ``Sequential``: what
    :func:`write` stores, and what the TensorFlow path deserializes to build the same
    architecture in Keras (:func:`mnist_core.models.keras_tf.build`)."""
    shape = [None, *net.input_shape]
    entries = []
    for layer in net.layers:
        entry = {"module": "keras.layers", "class_name": layer.kind,
                 "config": {"name": layer.name, "trainable": True, "dtype": _FLOAT32,
                            **layer.keras_config()},
                 "registered_name": None}
        if layer.built_by_keras:  # layers with their own build() record their input shape
            entry["build_config"] = {"input_shape": shape}
        entries.append(entry)
        shape = [None, *layer.out_shape(tuple(shape[1:]))]
    inputs = {"module": "keras.layers", "class_name": "InputLayer", "config": {
        "batch_shape": [None, *net.input_shape], "dtype": "float32", "sparse": False,
        "ragged": False, "name": "input_layer", "optional": False}, "registered_name": None}
    return {"module": "keras", "class_name": "Sequential", "config": {
        "name": net.name, "trainable": True, "dtype": _FLOAT32, "layers": [inputs, *entries],
        "build_input_shape": [None, *net.input_shape]}, "registered_name": None,
        "build_config": {"input_shape": [None, *net.input_shape]}, "compile_config": {}}


def write(net: Sequential) -> bytes:
    """The ``.keras`` file of ``net``: ``metadata.json``, ``config.json`` and
    ``model.weights.h5`` (each layer's weights in a ``vars`` group named by the layer; the
    model's own empty ``vars``), stored uncompressed."""
    import h5py

    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        h5.create_group("vars").attrs["name"] = net.name
        for layer, group in _groups(net.layers):
            g = h5.create_group(group).create_group("vars")
            g.attrs["name"] = layer.name
            for i, w in enumerate(layer.weights):
                g[str(i)] = np.asarray(w, np.float32)
    meta = {"keras_version": _keras_version(),
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in (("metadata.json", json.dumps(meta)),
                           ("config.json", json.dumps(model_config(net)))):
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), text)
        archive.writestr("model.weights.h5", weights.getvalue())
    return out.getvalue()


def _keras_version() -> str:
    """The installed Keras's version (from its metadata: Keras is not imported), else
    the version the shipped files were saved with."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("keras")
    except PackageNotFoundError:
        return "3.15.1"
