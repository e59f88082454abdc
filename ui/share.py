"""Share a digit by link: ``?digit=v1....`` carries the exact 28x28 model input
(:mod:`mnist_core.reading.share`).

Opening such a link (on Draw, Look inside or Stress test) keeps its digit for the session,
so the other pages offer it too (:mod:`ui.digit_picker`). A malformed or oversized link
gets a warning saying what is wrong, never a traceback.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from mnist_core.reading import share

SHARED_KEY = "shared_digit"         # session: the (28, 28) float32 digit a link brought
SHARED_TEXT_KEY = "shared_digit_text"  # session: the link value it was decoded from


def read_link() -> bool:
    """Decode this page's ``?digit=`` value; True when it brought a digit this session had
    not opened yet (Draw then shows it). A bad value shows ``st.warning``: call this once
    per run of a page."""
    text = st.query_params.get(share.PARAM)
    if text is None or text == st.session_state.get(SHARED_TEXT_KEY):
        return False
    try:
        image = share.decode(text)
    except ValueError as exc:
        st.warning(f"The digit in this link could not be opened: {exc}. Ask for the link "
                   "again, or draw a digit.", icon=":material/link_off:")
        return False
    st.session_state[SHARED_KEY] = image
    st.session_state[SHARED_TEXT_KEY] = text
    return True


def shared_digit() -> np.ndarray | None:
    """The digit a link brought this session: ``(28, 28) float32 in [0, 1]``, or None.
    Call :func:`read_link` once earlier in the page's run, so this page's link counts."""
    return st.session_state.get(SHARED_KEY)


def link(image: np.ndarray) -> str:
    """The address that opens ``image`` on Draw: the app's own URL when the browser told
    Streamlit (``st.context.url``), else a relative ``?digit=`` link."""
    try:
        base = st.context.url
    except Exception:  # noqa: BLE001 - no browser behind this session (AppTest, bare mode)
        base = None
    return f"{base.rstrip('/')}/?{share.query(image)}" if base else f"?{share.query(image)}"


def share_box(image: np.ndarray, what: str = "this digit") -> None:
    """A "Share" expander holding the link to ``image`` in a code box (its copy button
    copies it). The link carries the input rounded to 256 grey levels per pixel."""
    with st.expander(f"Share {what}", icon=":material/share:"):
        st.code(link(image), language=None, wrap_lines=True)
        st.caption("Copy the link (the button at its right): it opens this exact 28×28 "
                   "input on Draw, with the same answers, and Look inside and Stress test "
                   "offer it too.")
