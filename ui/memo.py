"""Keep one result per slot in the session, keyed by content: a rerun that asks for the same
thing again (a slider moved that this result does not depend on, a button) gets the one
already made instead of running the models again. Arrays are keyed by a digest of their
bytes, models by identity (a model loaded again is a new one)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import streamlit as st

T = TypeVar("T")


def digest(image: np.ndarray) -> bytes:
    """A short digest of an array's shape, dtype and bytes."""
    image = np.ascontiguousarray(image)
    h = hashlib.blake2b(repr((image.shape, image.dtype.str)).encode(), digest_size=16)
    h.update(image.data)
    return h.digest()


def model_key(models: Mapping[str, Any]) -> tuple:
    return tuple((name, id(m)) for name, m in models.items())


def remembered(slot: str, key: Any, compute: Callable[[], T]) -> T:
    """``compute()``, or the result this session last kept in ``slot`` under the same
    ``key``. One result is kept per slot."""
    name = f"memo-{slot}"
    last = st.session_state.get(name)
    if last is not None and last[0] == key:
        return last[1]
    result = compute()
    st.session_state[name] = (key, result)
    return result
