"""The model trained on Train live ("Your model"), kept in this browser session only.

It is stored in ``st.session_state`` (never on the server's disk, never shown to another
session) and answers beside the shipped models on every page that reads digits.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from mnist_core.model import Model

USER = "yours"                 # the user's model's key beside the shipped ones
USER_TITLE = "Your model"
USER_MODEL_KEY = "user_model"  # session state: the model put on the other pages


def with_user_model(models: Mapping[str, Model]) -> dict[str, Model]:
    """The shipped ``models`` plus "Your model" when this session has trained and kept one."""
    user = st.session_state.get(USER_MODEL_KEY)
    if isinstance(user, Model):
        return {**models, USER: user}
    return dict(models)


def use(model: Model) -> None:
    st.session_state[USER_MODEL_KEY] = model


def drop() -> None:
    st.session_state.pop(USER_MODEL_KEY, None)


def in_use(model: Model) -> bool:
    return st.session_state.get(USER_MODEL_KEY) is model
