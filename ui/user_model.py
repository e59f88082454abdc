"""The model trained on Train live ("Your model"), kept in this browser session only.

It is stored in ``st.session_state`` (never on the server's disk, never shown to another
session) and answers beside the shipped models on every page that reads digits.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from mnist_core.models.model import Model

USER = "yours"                 # the user's model's key beside the shipped ones
USER_TITLE = "Your model"
USER_MODEL_KEY = "user_model"  # session state: the model put on the other pages


CLASS = "class"                # the model taught on the class's digits (Teach page)
CLASS_TITLE = "Class model"
CLASS_MODEL_KEY = "class_model"


def with_user_model(models: Mapping[str, Model]) -> dict[str, Model]:
    """The shipped ``models`` plus "Your model" and "Class model" when this session has
    trained and kept them."""
    out = dict(models)
    for key, name in ((USER_MODEL_KEY, USER), (CLASS_MODEL_KEY, CLASS)):
        kept = st.session_state.get(key)
        if isinstance(kept, Model):
            out[name] = kept
    return out


def use(model: Model) -> None:
    st.session_state[USER_MODEL_KEY] = model


def drop() -> None:
    st.session_state.pop(USER_MODEL_KEY, None)


def in_use(model: Model) -> bool:
    return st.session_state.get(USER_MODEL_KEY) is model
