"""The first lines of every page: the models it shows and the names of the classes.

Page title, icon, layout and navigation are set once, in ``app.py``.
"""

from __future__ import annotations

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
