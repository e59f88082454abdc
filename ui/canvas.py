"""The drawing canvas, configured once for MNIST-style drawing: white ink on black.

Every page that lets a person draw uses :func:`drawing`, so the Draw page and the small
canvases of the classroom pages hand the same kind of image to
``mnist_core.preprocess``'s canvas path: ``(side, side, 4) uint8`` RGBA whose alpha is
the ink.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

INK = "#FFFFFF"     # white strokes...
PAPER = "#000000"   # ...on black, as MNIST's digits are


def drawing(key: str, side: int = 280, brush: int = 22,
            on_change: Callable[[], None] | None = None) -> np.ndarray | None:
    """A freehand canvas ``side`` pixels square; returns its RGBA image, or None before
    the first stroke. Each stroke end reruns the page."""
    # Imported here, on every run, so tests can stand in for the browser component.
    from streamlit_drawable_canvas import st_canvas

    result = st_canvas(stroke_width=brush, stroke_color=INK, background_color=PAPER,
                       height=side, width=side, drawing_mode="freedraw",
                       update_streamlit=True, return_image_data=True, key=key,
                       on_change=on_change)
    return None if result.image_data is None else np.asarray(result.image_data)
