"""Text from a person (an uploaded file's name) shown inside the app's Markdown as itself:
never a link, a picture, LaTeX, HTML or emphasis."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TextConfig:
    max_name_chars: int = 80    # a longer file name is shortened, with an ellipsis


TEXT = TextConfig()
# What Streamlit's Markdown gives a meaning inside a line: emphasis, links and pictures
# ([...]), code, LaTeX ($), HTML and entities (<, &), tables (|), strike-through (~), and
# colour, emoji and icon directives (":red[", ":smile:", ":material/x:": a colon before a
# non-space). Line-start syntax (headings, lists) cannot occur: the text is one line
# inside a sentence.
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|$~&]|:(?=\S))")


def plain(text: str, cfg: TextConfig = TEXT) -> str:
    """``text`` on one line, shortened to ``cfg.max_name_chars``, every Markdown character
    backslash-escaped, so ``st.markdown``/``st.error`` show it letter for letter."""
    text = " ".join(str(text).split())
    if len(text) > cfg.max_name_chars:
        text = text[:cfg.max_name_chars - 1] + "…"
    return _SPECIAL.sub(r"\\\1", text)
