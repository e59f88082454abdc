"""The first lines of every page: the models it shows and the names of the classes.

Page title, icon, layout and navigation are set once, in ``app.py``.
"""

from __future__ import annotations

import importlib
import sys
import threading

from mnist_core.models.model import Model

from . import data, dataset, user_model


def start(*, with_user_model: bool = False, datasets: bool = False
          ) -> tuple[dict[str, Model], tuple[str, ...]]:
    """``(models, class names)``: every shipped model in registry order, plus "Your model"
    from Train live when ``with_user_model`` and this session kept one (a digit model: not
    beside the clothing models). ``datasets``: the page follows the dataset choice
    (:mod:`ui.dataset`: a selector at its top, ``?data=fashion``); otherwise it shows
    digits. A missing or damaged artifact shows its error and stops the page here, before
    anything else is drawn."""
    if datasets:
        dataset.choose()
    else:
        dataset.use("mnist")
    models = data.models()
    if with_user_model and dataset.current() == "mnist":
        models = user_model.with_user_model(models)
    return models, data.class_names()


def warm_up(*modules: str) -> None:
    """Import ``modules`` in a background thread, unless already imported: what a page
    needs only after the person acts (the Draw page's flag box needs ui.class_data and
    SQLAlchemy, 0.18 s to import) is then ready by the time they have, and the page's
    first run does not wait for it. An import the page reaches meanwhile waits for the
    thread's (Python's import lock), never imports twice."""
    todo = [m for m in modules if m not in sys.modules]
    if todo:
        threading.Thread(target=lambda: [importlib.import_module(m) for m in todo],
                         daemon=True, name="warm-up").start()
