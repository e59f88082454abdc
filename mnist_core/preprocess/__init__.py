"""Turn a drawing, photo or scan into the 28x28 images MNIST models expect.

One module per stage, each with its own frozen config holding every threshold it uses:

* :mod:`.decode`: uploaded bytes -> pixels (:func:`decode_image`, size limits).
* :mod:`.ink`: which side is ink (:func:`polarity`, the only place that decides it) and
  the ink map: from the paper for a photo or scan, from the known background for a canvas
  drawing (:func:`ink_from_canvas`).
* :mod:`.page`: page clean-up for photos: a sheet cut out of its desk
  (:func:`isolate_sheet`), the paper's lighting (:func:`fit_paper`), ruling
  (:func:`remove_ruling`).
* :mod:`.split`: ink -> digits: components, grouping, faint groups, touching digits cut
  where a classifier (the judge) is surest (:func:`~.split.split_digits`).
* :mod:`.geometry`: one crop -> MNIST's 20x20 box in 28x28, centred by mass
  (:func:`normalise_crop`).
* :mod:`.pipeline`: the stages put together (:func:`preprocess`, :func:`segment`,
  :class:`PreprocessConfig`).

Images flow as ``(H, W) float32 in [0, 1]``, white ink on black, from the ink map on; each
intermediate stage is kept on :class:`Stages` for display.
"""

from .common import INK_LEVEL, NoDigitError, Polarity, Stages
from .decode import MAX_BYTES, MAX_PIXELS, ImageReadError, decode_image
from .geometry import (GeometryConfig, centre_by_mass, centre_of_mass, fit_box, normalise_crop,
                       paste_centre, stroke_width)
from .ink import (InkConfig, PolarityConfig, flatten_alpha, ink_from_canvas, ink_from_paper,
                  polarity)
from .page import (LightingConfig, RulingConfig, SheetConfig, fit_paper, isolate_sheet,
                   paper_pixels, remove_ruling)
from .pipeline import (DEFAULT, PreprocessConfig, ink_map, photo_ink, preprocess,
                       preprocess_batch, segment)
from .split import CUTS, Blob, Judge, SplitConfig, split_digits

__all__ = [
    "CUTS", "DEFAULT", "INK_LEVEL", "MAX_BYTES", "MAX_PIXELS", "Blob", "GeometryConfig",
    "ImageReadError", "InkConfig", "Judge", "LightingConfig", "NoDigitError", "Polarity",
    "PolarityConfig", "PreprocessConfig", "RulingConfig", "SheetConfig", "SplitConfig",
    "Stages", "centre_by_mass", "centre_of_mass", "decode_image", "fit_box", "fit_paper",
    "flatten_alpha", "ink_from_canvas", "ink_from_paper", "ink_map", "isolate_sheet",
    "normalise_crop", "paper_pixels", "paste_centre", "photo_ink", "polarity", "preprocess",
    "preprocess_batch", "remove_ruling", "segment", "split_digits", "stroke_width",
]
