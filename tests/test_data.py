"""Dataset loaders (IDX, CSV, npz, $MNIST_DATA, classes.txt), their errors, and the split."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from conftest import (IDX_NAMES, csv_text, digit_recognizer_header, idx_bytes, make_dataset,
                      make_images, write_idx_folder)

from mnist_core.datasets.common import DataError
from mnist_core.datasets.csv_digits import load_csv, parse_csv
from mnist_core.datasets.data import ENV_VAR, load_dataset, split_validation, to_float
from mnist_core.datasets.idx import load_idx_folder, parse_idx
from mnist_core.datasets.npz import load_npz


@pytest.fixture(scope="module")
def small():
    return make_dataset(n_train=30, n_test=12, seed=7)


def assert_same_data(loaded, expected):
    for key in ("x_train", "y_train", "x_test", "y_test"):
        got, want = getattr(loaded, key), getattr(expected, key)
        assert got.dtype == np.uint8, key
        np.testing.assert_array_equal(got, want, err_msg=key)


def assert_data_error(excinfo, *fragments):
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ---------------------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("spelling", sorted(IDX_NAMES))
def test_idx_folder_round_trip(tmp_path, small, gz, spelling):
    write_idx_folder(tmp_path, small, gz=gz, spelling=spelling)
    data = load_dataset(tmp_path)
    assert_same_data(data, small)
    assert data.name == "mnist" and data.class_names == tuple("0123456789")
    assert data.source == str(tmp_path)


def test_parse_idx_shapes():
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images)), images)
    assert parse_idx(idx_bytes(np.array([3, 1, 4], np.uint8))).tolist() == [3, 1, 4]


def _bad_magic(raw: bytes) -> bytes:
    return struct.pack(">I", 1234) + raw[4:]


@pytest.mark.parametrize("gz,filename,corrupt,message", [
    (False, "train-labels-idx1-ubyte", _bad_magic, "bad magic number 1234"),
    (False, "t10k-images-idx3-ubyte", lambda raw: raw[:-100], "truncated"),
    (True, "train-images-idx3-ubyte.gz", lambda raw: raw[:-40], "gzip"),
], ids=["bad-magic", "truncated-body", "truncated-gzip"])
def test_idx_corrupt_file(tmp_path, small, gz, filename, corrupt, message):
    write_idx_folder(tmp_path, small, gz=gz)
    path = tmp_path / filename
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(DataError) as excinfo:
        load_dataset(tmp_path)
    assert_data_error(excinfo, str(path), message)


def test_idx_count_mismatch(tmp_path, small):
    write_idx_folder(tmp_path, small, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(small.y_train[:-1]))
    with pytest.raises(DataError) as excinfo:
        load_dataset(tmp_path)
    assert_data_error(excinfo, str(tmp_path), "train", "30 images", "(29,)")


def test_idx_label_out_of_range(tmp_path, small):
    write_idx_folder(tmp_path, small, gz=False)
    labels = small.y_test.copy()
    labels[3] = 12
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(DataError) as excinfo:
        load_dataset(tmp_path)
    assert_data_error(excinfo, str(tmp_path), "test", "0-9", "12")


def test_idx_image_and_label_files_swapped(tmp_path, small):
    write_idx_folder(tmp_path, small, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(small.y_train))
    with pytest.raises(DataError) as excinfo:
        load_idx_folder(tmp_path)
    assert_data_error(excinfo, "train-images-idx3-ubyte", "expected a image file")


def test_idx_missing_file(tmp_path, small):
    write_idx_folder(tmp_path, small, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as excinfo:
        load_dataset(tmp_path)
    assert_data_error(excinfo, str(tmp_path), "t10k-labels-idx1-ubyte")


# ---------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [None, digit_recognizer_header()], ids=["no-header", "header"])
def test_kaggle_mnist_csv_folder(tmp_path, small, header):
    (tmp_path / "mnist_train.csv").write_text(csv_text(small.x_train, small.y_train, header))
    (tmp_path / "mnist_test.csv").write_text(csv_text(small.x_test, small.y_test, header))
    data = load_dataset(tmp_path)
    assert_same_data(data, small)
    assert data.source == str(tmp_path / "mnist_train.csv")
    # Pointing at one of the files finds its sibling too.
    assert_same_data(load_dataset(tmp_path / "mnist_test.csv"), small)


def test_digit_recognizer_train_csv_carves_labeled_test(tmp_path):
    x, y = make_images(60, seed=3)
    (tmp_path / "train.csv").write_text(csv_text(x, y, digit_recognizer_header()))
    (tmp_path / "test.csv").write_text(csv_text(x[:5], None, digit_recognizer_header(False)))
    data = load_dataset(tmp_path)
    assert len(data.x_test) == 10 and len(data.x_train) == 50
    # Every original (image, label) pair lands in exactly one split, labels intact.
    rows = {(xi.tobytes(), int(yi)) for xi, yi in zip(x, y)}
    got = [(xi.tobytes(), int(yi)) for xi, yi in zip(np.concatenate([data.x_train, data.x_test]),
                                                       np.concatenate([data.y_train, data.y_test]))]
    assert len(got) == 60 and set(got) == rows
    # The carve is fixed: loading again gives the same test split.
    np.testing.assert_array_equal(load_dataset(tmp_path).x_test, data.x_test)


def test_unlabeled_test_csv(tmp_path):
    x, _ = make_images(4, seed=5)
    path = tmp_path / "test.csv"
    path.write_text(csv_text(x, None, digit_recognizer_header(labeled=False)))
    images, labels = load_csv(path)
    assert labels is None
    np.testing.assert_array_equal(images, x)
    images, labels = parse_csv(path.read_bytes(), str(path))
    assert labels is None and images.shape == (4, 28, 28) and images.dtype == np.uint8


def test_gzipped_csv_file(tmp_path):
    x, y = make_images(3, seed=9)
    path = tmp_path / "some.csv.gz"
    path.write_bytes(gzip.compress(csv_text(x, y).encode()))
    images, labels = load_csv(path)
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(labels, y)


def _csv_error(tmp_path, text: str):
    path = tmp_path / "mnist_train.csv"
    path.write_text(text)
    with pytest.raises(DataError) as excinfo:
        load_csv(path)
    return path, excinfo


def test_csv_wrong_column_count_names_line(tmp_path):
    x, y = make_images(4, seed=1)
    lines = csv_text(x, y, digit_recognizer_header()).splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]  # drop the last pixel of data row 3 (file line 4)
    path, excinfo = _csv_error(tmp_path, "\n".join(lines))
    assert_data_error(excinfo, str(path), "line 4", "784 columns", "expected 785")


def test_csv_rows_of_wrong_width(tmp_path):
    path, excinfo = _csv_error(tmp_path, "1,2,3\n4,5,6\n")
    assert_data_error(excinfo, str(path), "3 columns", "785")


def test_csv_non_numeric(tmp_path):
    x, y = make_images(3, seed=2)
    lines = csv_text(x, y).splitlines()
    lines[1] = lines[1].replace(",", ",abc", 1)
    path, excinfo = _csv_error(tmp_path, "\n".join(lines))
    assert_data_error(excinfo, str(path), "non-numeric")


def test_csv_pixel_above_255(tmp_path):
    x, y = make_images(3, seed=2)
    table = csv_text(x, y).splitlines()
    table[2] = table[2].rsplit(",", 1)[0] + ",300"  # last pixel of data row 3
    path, excinfo = _csv_error(tmp_path, "\n".join(table))
    assert_data_error(excinfo, str(path), "0-255", "300")


def test_csv_label_out_of_range(tmp_path):
    x, y = make_images(3, seed=2)
    y = y.astype(int)
    y[1] = 11
    path, excinfo = _csv_error(tmp_path, csv_text(x, y))
    assert_data_error(excinfo, str(path), "label 11", "row 2", "0-9")


def test_csv_empty_and_header_only(tmp_path):
    path, excinfo = _csv_error(tmp_path, "\n\n")
    assert_data_error(excinfo, str(path), "empty")
    path, excinfo = _csv_error(tmp_path, digit_recognizer_header() + "\n")
    assert_data_error(excinfo, str(path), "no data rows")


def _csv_bytes(x, y=None, header=None) -> bytes:
    return csv_text(x, y, header).encode()


def test_csv_plain_and_general_parsers_agree():
    # Digits-only files take the byte-level parser; spaces, decimals, CRLF, a BOM or blank
    # lines take np.loadtxt's. Both give the same uint8 arrays.
    x, y = make_images(7, seed=4)
    plain = _csv_bytes(x, y)
    got_x, got_y = parse_csv(plain)
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    lines = plain.decode().splitlines()
    variants = {
        "spaces": "\n".join(line.replace(",", ", ") for line in lines),
        "decimals": "\n".join(line.replace(",0,", ",0.0,") for line in lines),
        "blank line": "\n".join(lines[:3] + [""] + lines[3:]),
        "leading zeros": "\n".join(line.replace(",0,", ",000,") for line in lines),
    }
    for name, text in variants.items():
        vx, vy = parse_csv(text, name)
        np.testing.assert_array_equal(vx, x, err_msg=name)
        np.testing.assert_array_equal(vy, y, err_msg=name)
    for name, raw in {"crlf": plain.replace(b"\n", b"\r\n"),
                      "bom": b"\xef\xbb\xbf" + plain,
                      "str": plain.decode()}.items():
        np.testing.assert_array_equal(parse_csv(raw, name)[0], x, err_msg=name)


@pytest.fixture
def tiny_blocks(monkeypatch):
    # A block of ~one row, so checks that span the file cross block edges.
    from mnist_core.datasets import csv_digits
    monkeypatch.setattr(csv_digits, "CSV_BLOCK_BYTES", 100)


@pytest.mark.parametrize("blocks", ["one block", "tiny blocks"])
def test_csv_errors_name_the_whole_file(request, blocks):
    if blocks == "tiny blocks":
        request.getfixturevalue("tiny_blocks")
    x, y = make_images(6, seed=8)
    header = digit_recognizer_header()
    table = [line.split(",") for line in csv_text(x, y).splitlines()]

    def parse(rows):
        with pytest.raises(DataError) as excinfo:
            parse_csv("\n".join([header] + [",".join(r) for r in rows]) + "\n", "f.csv")
        return excinfo

    rows = [list(r) for r in table]
    rows[1][5], rows[4][9] = "300", "1000"  # the range reported is the whole file's
    assert_data_error(parse(rows), "f.csv", "0-255", "found 0 to 1000")
    rows[4][0] = "12"  # a bad label is reported before bad pixels
    assert_data_error(parse(rows), "f.csv", "label 12", "data row 5", "0-9")
    rows = [list(r) for r in table]
    rows[3] = rows[3][:-1]
    assert_data_error(parse(rows), "f.csv", "line 5 has 784 columns, expected 785")
    rows = [list(r) for r in table]
    rows[5][7] = ""
    assert_data_error(parse(rows), "f.csv", "non-numeric", "line 7, column 8")
    rows[5][7] = "7x"
    assert_data_error(parse(rows), "f.csv", "non-numeric", "'7x' on line 7, column 8")


def test_csv_many_rows_cross_block_edges(tiny_blocks):
    x, y = make_images(9, seed=6)
    got_x, got_y = parse_csv(_csv_bytes(x, y, digit_recognizer_header()))
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)


# ---------------------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------------------

def _save_npz(path, data, **extra):
    arrays = dict(x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
                  y_test=data.y_test)
    arrays.update(extra)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def test_npz_file_and_folder(tmp_path, small):
    _save_npz(tmp_path / "mnist.npz", small)
    assert_same_data(load_dataset(tmp_path / "mnist.npz"), small)
    folder = load_dataset(tmp_path)
    assert_same_data(folder, small)
    assert folder.source == str(tmp_path / "mnist.npz")


def test_npz_missing_arrays(tmp_path, small):
    path = tmp_path / "mnist.npz"
    _save_npz(path, small, y_test=None)
    with pytest.raises(DataError) as excinfo:
        load_npz(path)
    assert_data_error(excinfo, str(path), "missing arrays", "y_test")


def test_npz_object_arrays_are_not_unpickled(tmp_path, small):
    path = tmp_path / "mnist.npz"
    boxed = np.empty(len(small.y_train), dtype=object)
    boxed[:] = [int(v) for v in small.y_train]
    _save_npz(path, small, y_train=boxed)
    with pytest.raises(DataError) as excinfo:
        load_npz(path)
    assert_data_error(excinfo, str(path), "not a readable .npz", "pickle")


def test_npz_not_an_archive(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"this is not a zip file")
    with pytest.raises(DataError) as excinfo:
        load_dataset(path)
    assert_data_error(excinfo, str(path), "not a readable .npz")


def test_npz_wrong_image_shape(tmp_path, small):
    path = tmp_path / "mnist.npz"
    _save_npz(path, small, x_test=small.x_test.reshape(len(small.x_test), -1))
    with pytest.raises(DataError) as excinfo:
        load_npz(path)
    assert_data_error(excinfo, str(path), "test", "(N, 28, 28)")


# ---------------------------------------------------------------------------------------
# Resolution, class names, odd paths
# ---------------------------------------------------------------------------------------

def test_env_var_resolution(tmp_path, small, monkeypatch):
    write_idx_folder(tmp_path, small)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    data = load_dataset()
    assert data.source == str(tmp_path)
    assert_same_data(data, small)


def test_explicit_path_beats_env_var(tmp_path, small, monkeypatch):
    write_idx_folder(tmp_path / "good", small)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    assert load_dataset(tmp_path / "good").source == str(tmp_path / "good")


def test_classes_txt_override(tmp_path, small):
    write_idx_folder(tmp_path, small)
    names = [f"class {i}" for i in range(10)]
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n\n")
    assert load_dataset(tmp_path).class_names == tuple(names)
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError) as excinfo:
        load_dataset(tmp_path)
    assert_data_error(excinfo, "classes.txt", "expected 10 class names, found 2")


def test_fashion_mnist_names(tmp_path, small):
    write_idx_folder(tmp_path, small)
    data = load_dataset(tmp_path, dataset="fashion-mnist")
    assert data.name == "fashion-mnist" and data.class_names[9] == "Ankle boot"


def test_nonexistent_path(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(DataError) as excinfo:
        load_dataset(missing)
    assert_data_error(excinfo, str(missing), "no such file or folder")


def test_folder_without_data_and_unknown_type(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(DataError) as excinfo:
        load_dataset(tmp_path)
    assert_data_error(excinfo, str(tmp_path), "found no IDX files")
    with pytest.raises(DataError) as excinfo:
        load_dataset(tmp_path / "readme.txt")
    assert_data_error(excinfo, "readme.txt", "unsupported file type")


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset(tmp_path, dataset="cifar")


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

def test_to_float_range():
    x = np.array([[0, 128, 255]], np.uint8)
    out = to_float(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 128 / 255, 1.0]])


def test_split_validation_deterministic_disjoint_sized():
    x = np.arange(100)
    y = x % 10
    a = split_validation(x, y, n_val=20, seed=3)
    b = split_validation(x, y, n_val=20, seed=3)
    c = split_validation(x, y, n_val=20, seed=4)
    assert len(a.x_val) == 20 and len(a.x_train) == 80
    assert set(a.x_val).isdisjoint(a.x_train)
    assert sorted(np.concatenate([a.x_val, a.x_train])) == list(range(100))
    np.testing.assert_array_equal(a.x_val, b.x_val)
    np.testing.assert_array_equal(a.y_val, a.x_val % 10)  # labels stay with their images
    assert not np.array_equal(a.x_val, c.x_val)


@pytest.mark.parametrize("n_val", [0, 100, 150])
def test_split_validation_rejects_bad_size(n_val):
    with pytest.raises(ValueError, match="n_val"):
        split_validation(np.zeros(100), np.zeros(100), n_val=n_val)
