"""mnist_core pieces behind the classroom pages: stress transforms, explanations, Kaggle."""

from __future__ import annotations

import gzip
import io
import zipfile

import numpy as np
import pytest

from mnist_core.insight import explain
from mnist_core.classroom import kaggle
from mnist_core.reading import stress
from mnist_core.datasets.common import DataError
from mnist_core.models.model import NumpyModel
from mnist_core.engine.layers import Dense
from mnist_core.models.architectures import NumpyConfig, build_net


def bar_image() -> np.ndarray:
    img = np.zeros((28, 28), np.float32)
    img[6:22, 13:15] = 1.0
    return img


def test_identity_transform_keeps_the_image():
    img = bar_image()
    assert np.allclose(stress.apply(img, stress.Transform()), img, atol=1e-6)


def test_shift_rotate_thicken_noise_do_what_they_say():
    img = bar_image()
    shifted = stress.apply(img, stress.Transform(shift_x=3))
    assert np.allclose(shifted[:, 16:18], img[:, 13:15], atol=1e-6)
    rotated = stress.apply(img, stress.Transform(rotate=90))
    assert rotated[13:15, 6:22].mean() > 0.8 and rotated[6:10, 13:15].mean() < 0.1
    assert stress.apply(img, stress.Transform(thickness=1)).sum() > img.sum() * 1.5
    assert stress.apply(img, stress.Transform(thickness=-1)).sum() < img.sum()
    noisy = stress.apply(img, stress.Transform(noise=0.2, seed=1))
    assert noisy.min() >= 0 and noisy.max() <= 1 and not np.allclose(noisy, img)
    assert np.array_equal(noisy, stress.apply(img, stress.Transform(noise=0.2, seed=1)))


class _Const:
    """A fake model whose confidence in class 1 is the image's mean brightness x 10."""

    def predict_proba(self, x):
        p = np.clip(x.reshape(len(x), -1).mean(1) * 10, 0, 1)
        out = np.zeros((len(x), 10), np.float32)
        out[:, 1] = p
        out[:, 0] = 1 - p
        return out


def test_sweep_returns_one_curve_per_model_over_the_range():
    values, curves = stress.sweep(bar_image(), {"a": _Const(), "b": _Const()}, 1, "thickness")
    assert list(values) == list(range(-2, 4))
    assert set(curves) == {"a", "b"} and curves["a"].shape == (6,)
    assert curves["a"][-1] > curves["a"][0]  # thicker strokes, more ink, more "confidence"


def test_numpy_input_gradient_matches_finite_differences():
    net = build_net(NumpyConfig(hidden=(16,), dropout=0.0), seed=0)
    img = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    grad = NumpyModel(net).input_gradient(img, 3)
    eps = 1e-2
    for (r, c) in [(5, 5), (14, 14), (20, 3)]:
        up, down = img.copy(), img.copy()
        up[r, c] += eps
        down[r, c] -= eps
        lp = lambda x: np.log(net.predict_proba(x[None])[0, 3])
        assert grad[r, c] == pytest.approx((lp(up) - lp(down)) / (2 * eps), rel=0.05, abs=1e-4)


def test_occlusion_map_highlights_the_pixels_the_model_uses():
    heat = explain.occlusion_map(_Const().predict_proba, bar_image(), 1)
    assert heat.shape == (28, 28)
    assert heat[14, 13] > heat[2, 2] and heat[2, 2] == pytest.approx(0, abs=1e-6)


def test_first_layer_templates_and_hidden_activations_of_the_numpy_net():
    net = build_net(NumpyConfig(hidden=(32, 16), dropout=0.0), seed=0)
    t = NumpyModel(net).first_layer_templates(8)
    assert t.shape == (8, 28, 28)
    assert np.allclose(t[2].ravel(), net.of_kind(Dense)[0].kernel[:, 2])
    acts = NumpyModel(net).hidden_activations(bar_image())
    assert [a.shape for a in acts] == [(32,), (16,)] and all((a >= 0).all() for a in acts)


def test_kaggle_submission_round_trip():
    rows = np.random.default_rng(0).integers(0, 256, (5, 784))
    csv = ("\n".join([",".join(f"pixel{i}" for i in range(784))] +
                     [",".join(map(str, r)) for r in rows]) + "\n").encode()
    images = kaggle.read_test_csv(csv)
    assert images.shape == (5, 28, 28)
    seen = []
    out = kaggle.submission_csv(lambda x: np.eye(10)[np.arange(len(x)) % 10], images,
                                batch_size=2, progress=seen.append)
    lines = out.strip().split("\n")
    assert lines[0] == "ImageId,Label" and lines[1:] == ["1,0", "2,1", "3,0", "4,1", "5,0"]
    assert seen[-1] == 1.0 and len(seen) == 3


def test_kaggle_rejects_train_csv_and_malformed_rows():
    with pytest.raises(DataError, match="label"):
        kaggle.read_test_csv(b"label,pixel0\n1,0\n")
    with pytest.raises(DataError, match="columns"):
        kaggle.read_test_csv(b"1,2,3\n4,5,6\n")


# ---------------------------------------------------------------------------------------
# Kaggle uploads: zip and gzip unpacked
# ---------------------------------------------------------------------------------------

CSV = b"pixel0,pixel1\n0,255\n"


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def unpacked(name: str, raw: bytes) -> tuple[bytes, str]:
    with kaggle.open_upload(name, raw) as (stream, csv_name):
        return stream.read(), csv_name


def test_open_upload_unpacks_zip_and_gzip_and_passes_csv_through():
    assert unpacked("test.csv", CSV) == (CSV, "test.csv")
    assert unpacked("test.csv.gz", gzip.compress(CSV)) == (CSV, "test.csv")
    assert unpacked("upload", gzip.compress(CSV)) == (CSV, "upload")  # by magic
    # test.csv wins inside a zip; otherwise the only CSV there is.
    both = zipped({"digit-recognizer/train.csv": b"label\n", "digit-recognizer/test.csv": CSV,
                   "readme.txt": b"hi"})
    assert unpacked("dr.zip", both) == (CSV, "dr.zip/digit-recognizer/test.csv")
    assert unpacked("x.zip", zipped({"mine.csv": CSV})) == (CSV, "x.zip/mine.csv")


@pytest.mark.parametrize("name, raw, problem", [
    ("two.zip", zipped({"a.csv": CSV, "b.csv": CSV}), "expected test.csv inside, found a.csv, b.csv"),
    ("none.zip", zipped({"readme.txt": b"hi"}), "found no CSV files"),
    ("bad.zip", b"PK\x03\x04 truncated", "not a readable zip file"),
    ("bad.gz", b"\x1f\x8b truncated", "could not be read to the end"),
])
def test_read_upload_refuses_what_it_cannot_unpack(name, raw, problem):
    with pytest.raises(DataError, match=problem):
        kaggle.read_upload(name, raw)


def test_read_upload_caps_the_unpacked_size():
    from dataclasses import replace
    cfg = kaggle.KaggleConfig(csv=replace(kaggle.KAGGLE.csv, max_bytes=10))
    rows = b"0,1\n" * 5
    with pytest.raises(DataError, match="big.zip/test.csv: holds more than 10 bytes of CSV"):
        kaggle.read_upload("big.zip", zipped({"test.csv": rows}), cfg)
    with pytest.raises(DataError, match="big: holds more than 10 bytes of CSV"):
        kaggle.read_upload("big.gz", gzip.compress(rows), cfg)
