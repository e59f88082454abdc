"""Decoding uploads: phone-size photos at reduced size, high-bit-depth images by their real
range, and images over Pillow's decompression-bomb limit refused with the size limit."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from conftest import SHIPPED_ARTIFACTS, draw_digit
from PIL import Image

from mnist_core.artifacts.files import load_models
from mnist_core.reading.inference import read_digit
from mnist_core.preprocess import MAX_PIXELS, ImageReadError, decode_image
from mnist_core.preprocess.decode import MIN_SIDE
from mnist_core.preprocess.ink import DEFAULT_INK


@pytest.fixture(scope="module")
def shipped():
    return load_models(SHIPPED_ARTIFACTS)


def encode(img: Image.Image, format: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=format, **kw)
    return buf.getvalue()


def seven(side: int = 280) -> np.ndarray:
    """A clear dark 7 on light paper, ``(side, side)`` float in [0, 1] (1 = paper)."""
    return draw_digit(7, side).astype(np.float32) / 255


def photo(width: int, height: int) -> np.ndarray:
    """A dark 7 in the middle of light paper, ``(height, width, 3) uint8``."""
    side = min(width, height) // 2
    page = np.full((height, width), 225, np.uint8)
    y, x = (height - side) // 2, (width - side) // 2
    page[y:y + side, x:x + side] = (seven(side) * 200 + 25).astype(np.uint8)
    return np.repeat(page[..., None], 3, axis=2)


# ---------------------------------------------------------------------------------------
# High bit depth: scaled by the image's own range, not clipped at 255
# ---------------------------------------------------------------------------------------

HIGH_BIT_DEPTH = {
    # mode: (how the 7 is stored, file format); ink 0 -> low value, paper 1 -> high value
    "I;16": (lambda v: (6_000 + v * 50_000).astype(np.uint16), "PNG"),
    "I": (lambda v: (20_000 + v * 300_000).astype(np.int32), "TIFF"),
    "F": (lambda v: (0.1 + v * 0.7).astype(np.float32), "TIFF"),
}


@pytest.mark.parametrize("mode", HIGH_BIT_DEPTH)
def test_high_bit_depth_greyscale_is_scaled_by_its_range_and_reads_as_a_seven(mode, shipped):
    store, fmt = HIGH_BIT_DEPTH[mode]
    img = Image.fromarray(store(seven()))
    assert img.mode == mode
    out = decode_image(encode(img, fmt))
    assert out.shape == (280, 280, 3) and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255               # the whole range, stretched
    assert out[0, 0, 0] == 255 and (out < 128).mean() > 0.05  # white paper, dark ink
    reading = read_digit(out, shipped)
    assert {reading.digit(n) for n in shipped} == {7}


def test_a_flat_high_bit_depth_image_decodes_without_dividing_by_zero():
    flat = Image.fromarray(np.full((40, 60), 40_000, np.uint16))
    out = decode_image(encode(flat, "PNG"))
    assert out.shape == (40, 60, 3) and len(np.unique(out)) == 1


# ---------------------------------------------------------------------------------------
# Size limits: Pillow's decompression-bomb limit gets the app's size message
# ---------------------------------------------------------------------------------------

def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` grey pixels and holds none (a bomb's
    header: opening it reads only this)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [
    (10_000, 10_000),   # 100 MP: over Image.MAX_IMAGE_PIXELS (a DecompressionBombWarning)
    (20_000, 10_000),   # 200 MP: over twice it (a DecompressionBombError)
    (30_000, 30_000),
])
def test_images_over_pillows_bomb_limit_get_the_size_limit(width, height):
    assert width * height > Image.MAX_IMAGE_PIXELS > MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning escapes either
        with pytest.raises(ImageReadError) as excinfo:
            decode_image(png_header(width, height))
    message = str(excinfo.value)
    assert "not a readable image" not in message
    assert f"{width * height / 1e6:.0f} megapixels" in message
    assert f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels" in message


# ---------------------------------------------------------------------------------------
# Phone-size photos: decoded at reduced size, still upright, still read
# ---------------------------------------------------------------------------------------

def test_the_decoded_side_is_twice_the_pipelines_working_side():
    assert MIN_SIDE >= 2 * DEFAULT_INK.work_side


def test_a_phone_size_jpeg_is_decoded_at_reduced_size_upright(shipped):
    """A 4000x3000 JPEG stored sideways with EXIF "rotate 90 CW" comes out portrait, at a
    DCT scale whose longer side is between MIN_SIDE and twice it, and reads as a 7."""
    upright = Image.fromarray(photo(3000, 4000))
    stored = upright.transpose(Image.Transpose.ROTATE_90)     # as the sensor lies
    exif = Image.Exif()
    exif[0x0112] = 6
    out = decode_image(encode(stored, "JPEG", quality=90, exif=exif.tobytes()))
    assert out.shape[2] == 3 and out.shape[0] > out.shape[1]  # portrait
    assert MIN_SIDE <= max(out.shape[:2]) < 2 * MIN_SIDE
    assert out.shape[0] / out.shape[1] == pytest.approx(4 / 3, abs=0.01)
    assert {read_digit(out, shipped).digit(n) for n in shipped} == {7}


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "1"])
def test_a_large_lossless_image_is_reduced_early(mode):
    img = Image.fromarray(photo(4000, 3000)).convert(mode)
    out = decode_image(encode(img, "PNG"))
    assert out.shape[2] == 3
    assert MIN_SIDE <= max(out.shape[:2]) < 2 * MIN_SIDE
    assert out.shape[1] / out.shape[0] == pytest.approx(4 / 3, abs=0.01)
    # The 7's dark ink survives the reduction in the middle of light paper.
    assert out[0, 0, 0] > 200 and out.min() < 60


def test_a_large_transparent_image_keeps_its_alpha_when_reduced():
    rgba = np.zeros((3000, 2000, 4), np.uint8)
    rgba[1000:2000, 950:1050] = (0, 0, 0, 255)                 # black ink, transparent paper
    out = decode_image(encode(Image.fromarray(rgba), "PNG"))
    assert out.shape[2] == 4 and MIN_SIDE <= out.shape[0] < 2 * MIN_SIDE
    assert out[..., 3].max() == 255 and out[0, 0, 3] == 0


def test_small_images_are_decoded_at_full_size():
    data = encode(Image.fromarray(photo(MIN_SIDE + 100, 300)), "JPEG", quality=90)
    assert decode_image(data).shape == (300, MIN_SIDE + 100, 3)
