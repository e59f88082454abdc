"""Which dataset's models a page shows: digits (MNIST) or clothing (Fashion-MNIST).

The pages that compare and explain models follow a choice kept in the address
(``?data=fashion``, so a teacher can send it) and in the session (so it stays put from page
to page, whose links carry no query); Draw and the class pages are digits only. What a page
chose this run is :func:`current`, which :mod:`ui.data` reads its artifacts by.
"""

from __future__ import annotations

import streamlit as st

from mnist_core.datasets.data import DATASET_INFO, DATASET_NAMES, DatasetInfo

PARAM = "data"                       # the query parameter: ?data=fashion
WIDGET_KEY = "dataset_choice"        # the selector (Streamlit forgets a widget's state on
                                     # a page without it, so the choice is kept apart:)
CHOICE_KEY = "dataset"               # session state: the last choice, across pages
CURRENT_KEY = "page_dataset"         # session state: the dataset of this page's run
CHOICES = {"digits": "mnist", "fashion": "fashion-mnist"}   # the address's value -> name
LABELS = {"digits": "Digits", "fashion": "Clothing"}
MAX_PARAM = 32                       # a longer ?data= value is not read at all


def current() -> str:
    """The canonical name of the dataset this page run shows (``"mnist"`` before a page
    chose one)."""
    return st.session_state.get(CURRENT_KEY, "mnist")


def info() -> DatasetInfo:
    """What the app knows of :func:`current`'s dataset (title, noun, class names)."""
    return DATASET_INFO[current()]


def _to_url() -> None:
    """The selector moved: remember it, and the address follows (digits, the default,
    leaves it bare)."""
    value = st.session_state.get(WIDGET_KEY) or "digits"
    st.session_state[CHOICE_KEY] = value
    if value == "digits":
        st.query_params.pop(PARAM, None)
    else:
        st.query_params[PARAM] = value


def use(dataset: str) -> None:
    """This page shows ``dataset`` (a canonical name) without offering a choice."""
    st.session_state[CURRENT_KEY] = dataset


def choose() -> str:
    """The dataset selector (Digits / Clothing) at the top of the page, started from the
    address's ``?data=`` when it has one, else from the session's last choice; returns
    the canonical name, also kept as :func:`current`. An unknown ``?data=`` value gets a
    warning and digits."""
    raw = st.query_params.get(PARAM)
    chosen = st.session_state.get(CHOICE_KEY, "digits")
    if raw is not None:
        chosen = {v: k for k, v in CHOICES.items()}.get(DATASET_NAMES.get(raw[:MAX_PARAM], ""))
        if chosen is None:
            st.warning(f"The address asks for a dataset called “{raw[:MAX_PARAM]}”, which "
                       f"this app does not have; showing digits. Known: "
                       f"{', '.join(CHOICES)}.", icon=":material/warning:")
            chosen = "digits"
    st.session_state[WIDGET_KEY] = chosen
    st.segmented_control("Dataset", list(CHOICES), format_func=LABELS.get, required=True,
                         key=WIDGET_KEY, on_change=_to_url,
                         help="The models trained on handwritten digits (MNIST) or on "
                              "photos of clothing (Fashion-MNIST)")
    _to_url()   # a page reached by a link without the query keeps the session's choice
    use(CHOICES[st.session_state[CHOICE_KEY]])
    return current()
