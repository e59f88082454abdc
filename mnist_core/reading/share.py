"""A digit in a link: the exact 28x28 model input as one URL query parameter.

``encode`` turns a model input into ``v1.`` + URL-safe base64 (no padding) of the zlib
stream of its 784 ``uint8`` pixels (0-255, row by row); ``decode`` gives it back as the
models read it. A digit drawn in the app has at most 256 grey levels per pixel after the
round trip, so the shared digit is read exactly as the ``uint8`` image it became; the app
shares the rounded image and shows that one, so sender and receiver see the same bars.

Links come from anyone, so :func:`decode` trusts nothing: the text's length, its alphabet,
the version, the compressed and decompressed sizes (a zip bomb stops at the cap) and the
exact pixel count are all checked, and every failure is a :class:`ValueError` whose message
can be shown as is.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from dataclasses import dataclass

import numpy as np

SIDE = 28
PIXELS = SIDE * SIDE
PARAM = "digit"           # the query parameter's name: ?digit=v1.eJz...
VERSION = "v1"            # bumped if the payload's layout ever changes


@dataclass(frozen=True)
class ShareLimits:
    max_chars: int = 2048     # longest parameter accepted; a 784-byte digit encodes in < 1,100
    level: int = 9            # zlib level: the smallest links (a digit compresses to ~300 B)


LIMITS = ShareLimits()
_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def to_pixels(image: np.ndarray) -> np.ndarray:
    """``(28, 28) float32 in [0, 1]`` (or ``uint8``) -> ``(28, 28) uint8``, rounded: the
    image a link carries. Raises ValueError for another shape."""
    x = np.asarray(image)
    if x.shape != (SIDE, SIDE):
        raise ValueError(f"a shared digit is a {SIDE}x{SIDE} model input, not {x.shape}")
    if x.dtype == np.uint8:
        return x.copy()
    return (np.clip(np.nan_to_num(x.astype(np.float32)), 0, 1) * 255).round().astype(np.uint8)


def shared_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a link carries it and :func:`decode` gives it back: ``(28, 28) float32
    in [0, 1]``, a multiple of 1/255 per pixel."""
    return to_pixels(image).astype(np.float32) / 255


def encode(image: np.ndarray, limits: ShareLimits = LIMITS) -> str:
    """The query-parameter value for ``image`` (``(28, 28)`` float32 in [0, 1] or uint8):
    ``"v1."`` + URL-safe base64 of zlib(784 uint8), no padding."""
    packed = zlib.compress(to_pixels(image).tobytes(), limits.level)
    return f"{VERSION}." + base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def decode(text: str, limits: ShareLimits = LIMITS) -> np.ndarray:
    """A link's ``digit`` value -> ``(28, 28) float32 in [0, 1]``, exactly as encoded.

    Raises ValueError, with a message fit to show, for anything that is not a value
    :func:`encode` could have written: too long, wrong version, bad characters or base64,
    not zlib, or not exactly 784 pixels once inflated (inflating stops past 784 bytes).
    """
    if not isinstance(text, str) or not text:
        raise ValueError("the shared digit is empty")
    if len(text) > limits.max_chars:
        raise ValueError(f"the shared digit is too long ({len(text):,} characters; a digit "
                         f"link holds at most {limits.max_chars:,})")
    version, dot, body = text.partition(".")
    if not dot or version != VERSION:
        raise ValueError(f"the shared digit has an unknown format (expected it to start "
                         f"with '{VERSION}.'); the link may be cut short or from another app")
    if not _ALPHABET.fullmatch(body):
        raise ValueError("the shared digit holds characters a digit link never has; the link "
                         "may have been changed")
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the shared digit is not valid base64; the link may be cut "
                         "short") from exc
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(packed, PIXELS + 1)
    except zlib.error as exc:
        raise ValueError("the shared digit could not be unpacked; the link may be cut short "
                         "or changed") from exc
    if len(raw) > PIXELS or inflater.unconsumed_tail:
        raise ValueError(f"the shared digit holds more than {PIXELS} pixels; it is not a "
                         f"{SIDE}x{SIDE} digit")
    if not inflater.eof or inflater.unused_data:
        raise ValueError("the shared digit is incomplete or has extra data; the link may be "
                         "cut short or changed")
    if len(raw) != PIXELS:
        raise ValueError(f"the shared digit has {len(raw)} pixels, not {PIXELS} "
                         f"({SIDE}x{SIDE})")
    return np.frombuffer(raw, np.uint8).reshape(SIDE, SIDE).astype(np.float32) / 255


def query(image: np.ndarray) -> str:
    """``"digit=v1...."``: the query string that shares ``image``."""
    return f"{PARAM}={encode(image)}"
