"""The shipped artifacts, loaded once: models per process, data per manifest version.

Each dataset's artifacts are a folder of their own (digits in ``artifacts/``, clothing in
``artifacts/fashion/``); every function here reads the folder of the dataset the page run
shows (:func:`ui.dataset.current`), or of the one it is given. A dataset's models load
the first time a page shows them, so a server nobody asked for clothing never holds them.

Every loader is keyed on the artifacts folder and the manifest's modification time, so
artifacts rebuilt while the app runs are picked up on the next rerun. A missing or damaged
artifact shows ``st.error`` with :class:`~mnist_core.artifacts.files.ArtifactError`'s message
(which names the file by its folder's name, never the server's path, and the rebuild
command) and stops the page.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import streamlit as st
from streamlit import runtime

from mnist_core.reading import novelty
from mnist_core import tuning
from mnist_core.artifacts.files import (DATASET_DIRS, DEFAULT_DIR, MANIFEST, ArtifactError,
                                        Gallery, load_gallery, load_models, manifest_stamp,
                                        read_manifest, rebuild_hint, shown)
from mnist_core.models.model import Model

from . import dataset as dataset_ui

ENV_VAR = "MNIST_STUDIO_ARTIFACTS"
DIGITS = tuple(str(d) for d in range(10))
T = TypeVar("T")


def artifacts_dir(dataset: str | None = None) -> Path:
    """The artifacts folder of ``dataset`` (default: the page's, :func:`ui.dataset.current`):
    ``$MNIST_STUDIO_ARTIFACTS`` if set, else the repository's ``artifacts/``, for digits;
    the same folder's ``fashion/`` for clothing."""
    base = Path(os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser()
    name = dataset or dataset_ui.current()
    return base / DATASET_DIRS[name].relative_to(DEFAULT_DIR)


def far_refs() -> dict[str, novelty.FarReference]:
    """The shipped models' maps for the not-a-digit verdict's far signal
    (:func:`mnist_core.reading.novelty.references`: read once per artifacts version, and already
    when the models load), to pass to :mod:`mnist_core.reading.inference`'s readers; none
    for clothing (the verdict is about digits)."""
    if dataset_ui.current() != "mnist":
        return {}
    return novelty.references(artifacts_dir())


# Two entries: the digits' models and the clothing's, each loaded on first use.
@st.cache_resource(show_spinner="Loading the models…", max_entries=2)
def _load_models(directory: str, stamp: int) -> dict[str, Model]:
    server = runtime.exists()  # a real server, not AppTest inside someone else's test session
    if server:   # the process's C heap and BLAS threads: mnist_core.tuning says why
        tuning.return_big_buffers()
    loaded = load_models(directory)
    # The not-a-digit check's maps (novelty.references, cached there per folder and
    # version) take ~0.9 s, which the first page need not wait for: they load in the
    # background now, and the first reading that needs them (a drawing takes a person
    # longer than that) waits for what is left. Digits only: clothing is never judged.
    if read_manifest(directory).get("dataset", "mnist") == "mnist":
        threading.Thread(target=novelty.references, args=(directory,), daemon=True,
                         name="novelty-maps").start()
    if server:
        tuning.limit_blas_threads()
        # Streamlit collects garbage after every rerun (runner.postScriptGC): with the app's
        # modules and models loaded a full collection took 60-67 ms here, ~0 once the
        # long-lived objects are frozen, so only new garbage is walked.
        gc.collect()
        gc.freeze()
    return loaded


@st.cache_data(show_spinner=False, max_entries=2)
def _load_gallery(directory: str, stamp: int) -> Gallery:
    return load_gallery(directory)


@st.cache_data(show_spinner=False, max_entries=2)
def _read_manifest(directory: str, stamp: int) -> dict:
    return read_manifest(directory)


def _fail(exc: ArtifactError) -> NoReturn:
    st.error(f"**The shipped models could not be loaded.**\n\n{exc}", icon="🚫")
    st.stop()


def _loaded(loader: Callable[[str, int], T]) -> T:
    """``loader`` (one of the cached functions above) on the artifacts folder; an
    :class:`ArtifactError` stops the page with its message."""
    directory = artifacts_dir()
    try:
        return loader(str(directory), manifest_stamp(directory))
    except ArtifactError as exc:
        _fail(exc)


def models() -> dict[str, Model]:
    """Every model the manifest lists, in registry order (stops the page if none load)."""
    loaded = _loaded(_load_models)
    if not loaded:
        _fail(ArtifactError(f"{shown(artifacts_dir() / MANIFEST)} lists no models; "
                            f"{rebuild_hint(dataset=dataset_ui.current())}"))
    return loaded


def gallery() -> Gallery:
    """The shipped test digits with every model's answer (stops the page if unreadable)."""
    return _loaded(_load_gallery)


def manifest() -> dict:
    return _loaded(_read_manifest)


def class_names() -> tuple[str, ...]:
    """Display name of each label (digits for MNIST), from the manifest."""
    names = manifest().get("class_names") or DIGITS
    return tuple(str(n) for n in names) if len(names) == 10 else DIGITS
