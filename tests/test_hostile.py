"""The hostile and careless inputs of issue #25, fed to the real surfaces: the Kaggle, Upload
and Class dashboard pages (AppTest), the class codes and PINs, and the command line. Each
bad input gets a clear message naming what is wrong: never a traceback, never a path of
the server. Files are small and built in tmp_path; the bombs are built as streams (a
200 MB line is 0.2 MB zipped), and their memory is measured in a subprocess.

Pages share one AppTest per module where they can (a case is one upload and one rerun).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import app_helpers as h
from class_db import open_classes, pin_of
from mnist_core import cli
from mnist_core.classroom import class_archive, class_engine, class_schema, class_store as cs
from mnist_core.classroom import kaggle
from mnist_core.datasets.common import DataError
from ui import class_data

TIMEOUT = 180
SERVER_PATHS = (str(h.REPO), "/tmp/", "/work/", "site-packages")


def clean(text: str) -> None:
    """No traceback and no server path in what a person is shown."""
    assert "Traceback" not in text and 'File "' not in text, text
    for path in SERVER_PATHS:
        assert path not in text, text


def unescaped(markdown: str) -> str:
    """Markdown's backslash escapes (ui.text.plain's) removed: the text a person reads."""
    return re.sub(r"\\(.)", r"\1", markdown)


def shown(at) -> str:
    """Every message element of an AppTest page, in one string."""
    parts = [e.value for kind in ("error", "warning", "info", "success", "markdown", "caption")
             for e in getattr(at, kind)]
    return " | ".join(str(p) for p in parts)


def zipped(files: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def zip_streamed(name: str, chunk: bytes, times: int) -> bytes:
    """A zip of one member ``chunk * times``, written as a stream (never whole in memory)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, z.open(name, "w") as f:
        for _ in range(times):
            f.write(chunk)
    return buf.getvalue()


def deflate_repeated(chunk: bytes, times: int) -> bytes:
    """A raw deflate stream inflating to ``chunk * times``, made by compressing ``chunk``
    once: a block after a full flush does not look back, so it can be repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    return block * times + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def zip_bomb(name: str, chunk: bytes, times: int, declared: int | None = None) -> bytes:
    """A zip whose member ``name`` inflates to ``chunk * times`` bytes, its header saying
    ``declared`` (default: the truth). Built without inflating anything."""
    data = deflate_repeated(chunk, times)
    size = len(chunk) * times if declared is None else declared
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(info, b"placeholder")          # replaced below
    raw = buf.getvalue()
    local_end = 30 + len(name)
    header = bytearray(raw[:local_end])
    struct.pack_into("<III", header, 14, 0, len(data), min(size, 0xFFFFFFFF))
    central = bytearray(raw[raw.index(b"PK\x01\x02"):raw.index(b"PK\x05\x06")])
    struct.pack_into("<III", central, 16, 0, len(data), min(size, 0xFFFFFFFF))
    end = bytearray(raw[raw.index(b"PK\x05\x06"):])
    struct.pack_into("<I", end, 16, len(header) + len(data))   # central directory offset
    return bytes(header) + data + bytes(central) + bytes(end)


def row(values) -> bytes:
    return (",".join(str(v) for v in values) + "\n").encode()


GOOD_ROW = row([0] * 784)
HEADER = row([f"pixel{i}" for i in range(784)])


# ---------------------------------------------------------------------------------------
# The Kaggle page
# ---------------------------------------------------------------------------------------

def _kaggle_cases() -> list:
    unsupported = bytearray(zipped({"test.csv": GOOD_ROW}, zipfile.ZIP_STORED))
    unsupported[8:10] = struct.pack("<H", 99)            # AES: not a method zipfile reads
    central = unsupported.index(b"PK\x01\x02")
    unsupported[central + 10:central + 12] = struct.pack("<H", 99)
    return [
        ("line-200MB.zip", lambda: zip_streamed("test.csv", b"0," * 2**20, 100),
         "line 1 is longer than 16 KB"),
        ("long-line.csv", lambda: b"0," * 20_000 + b"\n", "line 1 is longer than 16 KB"),
        ("long-header.csv", lambda: b"pixel," * 5000 + b"\n" + GOOD_ROW,
         "line 1 is longer than 16 KB"),
        ("long-cell.csv", lambda: HEADER + row(["1" * 40] + [0] * 783),
         "longer than 32 characters"),
        ("too-many-rows.zip", lambda: zip_streamed("test.csv", b"0\n", 100_010),
         "more than 100,000 rows"),
        ("zip-in-zip.zip", lambda: zipped({"test.csv": zipped({"test.csv": GOOD_ROW})}),
         "longer than 32 characters"),
        ("train.csv", lambda: row(["label"] + [f"pixel{i}" for i in range(784)])
         + row([3] + [0] * 784), "has a 'label' column"),
        ("labeled-no-header.csv", lambda: row([3] + [0] * 784), "has a 'label' column"),
        ("three-columns.csv", lambda: b"1,2,3\n4,5,6\n", "rows have 3 columns"),
        ("ragged.csv", lambda: HEADER + GOOD_ROW + row([0] * 700), "line 3 has 700 columns"),
        ("letters.csv", lambda: HEADER + row(["abc"] + [0] * 783), "non-numeric"),
        ("negative.csv", lambda: HEADER + row([-5] + [0] * 783), "0-255"),
        ("too-bright.csv", lambda: HEADER + row([1000] + [0] * 783), "0-255"),
        ("padded-too-bright.csv", lambda: HEADER + row(["0001000"] + [0] * 783), "0-255"),
        ("decimals.csv", lambda: HEADER + row([0.5] + [0] * 783), "whole numbers"),
        ("nan.csv", lambda: HEADER + row(["nan"] + [0] * 783), "whole numbers"),
        ("empty.csv", lambda: b"", "the file is empty"),
        ("blank-lines.csv", lambda: b"\n\n\n", "the file is empty"),
        ("header-only.csv", lambda: HEADER, "no data rows"),
        ("two.zip", lambda: zipped({"a.csv": GOOD_ROW, "b.csv": GOOD_ROW}),
         "expected test.csv inside"),
        ("no-csv.zip", lambda: zipped({"readme.txt": b"hi"}), "no CSV files"),
        ("truncated.zip", lambda: zipped({"test.csv": GOOD_ROW * 50})[:60],
         "not a readable zip file"),
        ("truncated.gz", lambda: gzip.compress(GOOD_ROW * 50)[:40],
         "could not be read to the end"),
        ("aes.zip", lambda: bytes(unsupported), "could not unpack test.csv"),
        ("picture.csv", lambda: h.png_bytes(np.zeros((8, 8), np.uint8)), "columns"),
        ("utf16.csv", lambda: ("\ufeff" + HEADER.decode() + GOOD_ROW.decode()).encode("utf-16"),
         "non-numeric value"),
        ("[link](http://x.y) $x^2$.csv", lambda: b"1,2\n", "rows have 2 columns"),
    ]


KAGGLE_CASES = _kaggle_cases()


def page_app(artifacts, page: str):
    """The app on the fixture artifacts, switched to ``app_pages/<page>.py``; one per module,
    each case uploading over the last (as a person trying file after file)."""
    os.environ["MNIST_STUDIO_ARTIFACTS"] = str(artifacts)
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(f"app_pages/{page}.py").run()
    yield at
    os.environ.pop("MNIST_STUDIO_ARTIFACTS", None)


@pytest.fixture(scope="module")
def kaggle_app(artifacts):
    yield from page_app(artifacts, "kaggle")


@pytest.mark.parametrize("name, make, words", KAGGLE_CASES, ids=[c[0] for c in KAGGLE_CASES])
def test_kaggle_page_refuses_with_a_clear_message(kaggle_app, name, make, words):
    at = kaggle_app
    at.file_uploader(key="kaggle_upload").set_value([(name, make(), "text/csv")]).run()
    assert not at.exception, [e.message for e in at.exception]
    errors = " | ".join(e.value for e in at.error)
    assert "not a Digit Recognizer test file" in errors and words in unescaped(errors), errors
    assert not at.button                          # nothing to predict
    clean(shown(at))
    if "[link]" in name:                          # the name is shown as text, not Markdown
        assert "\\[link\\](http" in errors and "\\$x^2\\$" in errors


def test_kaggle_page_states_its_limits(kaggle_app):
    captions = " ".join(c.value for c in kaggle_app.caption)
    assert "100,000 rows" in captions and "200 MB" in captions and "16 KB a line" in captions


def test_kaggle_reading_is_bounded_in_cpu_time():
    cfg = kaggle.KaggleConfig(csv=replace(kaggle.KAGGLE.csv, max_cpu_s=0.0))
    csv = HEADER + row(["0001"] * 784) * 3000           # > one 4 MB block of zero-padded cells
    with pytest.raises(DataError, match="took more than 0 s of CPU time"):
        kaggle.read_test_csv(csv, "slow.csv", cfg)
    images = kaggle.read_test_csv(csv[:len(HEADER) + 10 * len(row(["0001"] * 784))], "ok.csv")
    assert images.shape == (10, 28, 28) and (images == 1).all()   # zero-padding is fine


MEMORY_PROBE = textwrap.dedent("""
    import io, json, resource, sys, time, zipfile
    sys.path.insert(0, {repo!r})
    sys.path.insert(0, {tests!r})
    from mnist_core.classroom import class_archive, kaggle
    from mnist_core.datasets.common import DataError
    import test_hostile as t
    kind = sys.argv[1]
    data = (t.zip_streamed("test.csv", b"0," * 2**20, 100) if kind == "line"
            else t.zip_bomb("class.json", b" " * 2**20, 2048) if kind == "json"
            else t.zip_bomb("class.json", b" " * 2**20, 2048, declared=100))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu = time.process_time()
    try:
        if kind == "line":
            kaggle.read_upload("bomb.zip", data)
        else:
            class_archive.read_export(t.with_npz(data))
        message = "accepted"
    except (DataError, class_archive.ImportFileError) as exc:
        message = str(exc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({{"message": message, "peak_mb": (peak - before) / 1024,
                      "cpu_s": time.process_time() - cpu}}))
""")


def with_npz(bomb: bytes) -> bytes:
    """``bomb`` (a zip holding class.json) with an export's small mnist.npz added."""
    npz = io.BytesIO()
    empty = np.zeros((0, 28, 28), np.uint8)
    np.savez_compressed(npz, x_train=empty, y_train=np.zeros(0, np.uint8), x_test=empty,
                        y_test=np.zeros(0, np.uint8))
    buf = io.BytesIO(bomb)
    with zipfile.ZipFile(buf, "a") as z:
        z.writestr("mnist.npz", npz.getvalue())
    return buf.getvalue()


# Peak memory above the process's own before the call: the 7.4 GB (a 200 MB line)
# and 3.46 GB (a 2 GiB class.json) cases, each well under the 300 MB a request may take.
MEMORY_BOUND_MB = {"line": 64, "json": 64, "json-lying": 160}


@pytest.mark.parametrize("kind, words", [
    ("line", "line 1 is longer than 16 KB"),
    ("json", "class.json unpacks to more than 64 MB"),
    ("json-lying", "not a readable class export"),     # zipfile stops at the declared size
])
def test_bombs_are_refused_in_bounded_memory(kind, words):
    probe = MEMORY_PROBE.format(repo=str(h.REPO), tests=str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", probe, kind], capture_output=True, text=True,
                          timeout=120, cwd=h.REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert words in got["message"], got
    assert got["peak_mb"] < MEMORY_BOUND_MB[kind], got


# ---------------------------------------------------------------------------------------
# The Upload page: only the promised formats, never a traceback
# ---------------------------------------------------------------------------------------

def _pillow(fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), "white").save(buf, fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` and holds a few bytes of pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))


UPLOAD_CASES = [
    # Named as the uploader allows (Streamlit refuses other extensions itself): renamed files.
    ("drawing-eps.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
     "not a readable image"),
    ("icon-ico.png", _pillow("ICO"), "not a readable image"),
    ("scan-ppm.bmp", _pillow("PPM"), "not a readable image"),
    ("old-pcx.gif", _pillow("PCX"), "not a readable image"),
    ("art-tga.tif", _pillow("TGA"), "not a readable image"),
    ("empty.png", b"", "not a readable image"),
    ("text.png", b"hello, I am not a picture\n" * 10, "not a readable image"),
    ("page.jpg", b"<html><script>alert(1)</script></html>", "not a readable image"),
    ("vector.png", b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>',
     "not a readable image"),
    ("truncated.png", h.png_bytes(np.zeros((64, 64), np.uint8))[:50], "not a readable image"),
    ("bomb.png", _png_header_only(60_000, 60_000), "megapixels"),
    ("[click me](http://evil.example) $x$.png", b"nope", "not a readable image"),
]


@pytest.fixture(scope="module")
def upload_app(artifacts):
    yield from page_app(artifacts, "upload")


@pytest.mark.parametrize("name, data, words", UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_upload_page_refuses_with_a_clear_message(upload_app, name, data, words):
    at = upload_app
    at.file_uploader(key="uploads").set_value([(name, data, "image/png")]).run()
    assert not at.exception, [e.message for e in at.exception]
    errors = " | ".join(e.value for e in at.error)
    assert "Could not read" in errors and words in unescaped(errors), errors
    clean(shown(at))
    if "[click" in name:
        titles = [m.value for m in at.markdown if "click" in m.value]
        assert titles and all("\\[click me\\](http" in t for t in titles), titles


# ---------------------------------------------------------------------------------------
# The Class dashboard's import (the class's PIN typed)
# ---------------------------------------------------------------------------------------

def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npz_claiming(key: str, shape: tuple, descr: str = "|u1") -> bytes:
    """An npz whose ``key`` array's header claims ``shape`` of ``descr``, with no data."""
    empty = np.zeros((0, 28, 28), np.uint8)
    arrays = {"x_train": empty, "y_train": np.zeros(0, np.uint8), "x_test": empty,
              "y_test": np.zeros(0, np.uint8)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in arrays.items():
            npy = io.BytesIO()
            if k == key:
                np.lib.format.write_array_header_1_0(npy, {"descr": descr, "fortran_order": False,
                                                           "shape": shape})
            else:
                np.save(npy, v)
            z.writestr(f"{k}.npy", npy.getvalue())
    return buf.getvalue()


def _export(meta=None, npz=None) -> bytes:
    empty = np.zeros((0, 28, 28), np.uint8)
    npz = npz if npz is not None else _npz(x_train=empty, y_train=np.zeros(0, np.uint8),
                                           x_test=empty, y_test=np.zeros(0, np.uint8))
    meta = meta if meta is not None else {"format": class_archive.EXPORT_FORMAT, "version": 1,
                                          "digits": []}
    body = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    return zipped({"class.json": body, "mnist.npz": npz})


def _one_digit_export(**change) -> bytes:
    entry = {"id": "5f0c6f53-1e0a-4a51-9d3e-0d5a3e3c9c11", "writer": "ana", "label": 3,
             "source": "collect", "created_at": "2026-11-01T09:00:00+00:00", "answers": {},
             "strokes": None, **change}
    x = np.zeros((1, 28, 28), np.uint8)
    npz = _npz(x_train=x, y_train=np.array([3], np.uint8), x_test=np.zeros((0, 28, 28), np.uint8),
               y_test=np.zeros(0, np.uint8))
    return _export({"format": class_archive.EXPORT_FORMAT, "version": 1, "digits": [entry]}, npz)


IMPORT_CASES = [
    ("not-a-zip.zip", lambda: b"plain text", "not a readable class export"),
    ("foreign.zip", lambda: zipped({"readme.txt": b"hi"}), "no class.json and mnist.npz"),
    ("json-bomb.zip", lambda: with_npz(zip_bomb("class.json", b" " * 2**20, 2048)),
     "class.json unpacks to more than 64 MB"),
    ("json-lying.zip", lambda: with_npz(zip_bomb("class.json", b" " * 2**20, 80, declared=10)),
     "not a readable class export"),
    ("npz-huge.zip", lambda: _export(npz=_npz_claiming("x_train", (10**8, 28, 28))),
     "an export holds at most"),
    ("npz-10e11.zip", lambda: _export(npz=_npz_claiming("y_test", (10**11,))),
     "100,000,000,000 uint8"),
    ("npz-pickle.zip", lambda: _export(npz=_npz(x_train=np.array([{"a": 1}], object))),
     "object"),
    ("npz-float.zip", lambda: _export(npz=_npz_claiming("x_test", (2, 28, 28), "<f8")),
     "float64"),
    ("json-garbage.zip", lambda: _export(meta=b"{not json"), "not a readable class export"),
    ("json-deep.zip", lambda: _export(meta=b"[" * 100_000 + b"]" * 100_000),
     "not a readable class export"),
    ("json-other.zip", lambda: _export(meta={"format": "something else"}),
     "not from an MNIST Studio class export"),
    ("json-version.zip", lambda: _export(meta={"format": class_archive.EXPORT_FORMAT,
                                               "version": 99}), "version 99"),
    ("mismatch.zip", lambda: _export(meta={"format": class_archive.EXPORT_FORMAT,
                                           "version": 1, "digits": [{}]}), "do not match"),
    ("bad-id.zip", lambda: _one_digit_export(id="not-a-uuid"), "damaged at digit 1"),
    ("bad-writer.zip", lambda: _one_digit_export(writer="<script>"), "damaged at digit 1"),
    ("bad-label.zip", lambda: _one_digit_export(label=7), "label differs"),
    ("bad-source.zip", lambda: _one_digit_export(source="anywhere"), "damaged at digit 1"),
    ("bad-time.zip", lambda: _one_digit_export(created_at="yesterday"), "damaged at digit 1"),
]


@pytest.fixture(scope="module")
def dashboard_app(artifacts, tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile-db") / "classroom.sqlite"
    engine = class_engine.make_engine(class_engine.sqlite_url(path))
    class_schema.migrate(engine)
    open_classes(engine, ("7b",))
    saved = {k: os.environ.get(k) for k in (class_data.DB_ENV, "MNIST_STUDIO_ARTIFACTS")}
    os.environ[class_data.DB_ENV] = str(path)
    os.environ["MNIST_STUDIO_ARTIFACTS"] = str(artifacts)
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["class"] = "7b"
    at.run()
    at.switch_page("app_pages/class_dashboard.py").run()
    at.text_input(key="dashboard-pin").input(pin_of("7b")).run()
    assert at.get("file_uploader"), shown(at)
    yield at, engine
    engine.dispose()
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.mark.parametrize("name, make, words", IMPORT_CASES, ids=[c[0] for c in IMPORT_CASES])
def test_dashboard_import_refuses_with_a_clear_message(dashboard_app, name, make, words):
    at, engine = dashboard_app
    at.file_uploader(key="dashboard-import").set_value([(name, make(), "application/zip")]).run()
    at.button(key="dashboard-import-go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    errors = " | ".join(e.value for e in at.error)
    assert "Nothing was imported" in errors and words in unescaped(errors), errors
    clean(shown(at))
    assert len(cs.load_class(engine, "7b")) == 0


# ---------------------------------------------------------------------------------------
# Class codes: a learner can only join a class a teacher started
# ---------------------------------------------------------------------------------------

@pytest.fixture
def class_db(monkeypatch, tmp_path, artifacts):
    path = tmp_path / "classroom.sqlite"
    monkeypatch.setenv(class_data.DB_ENV, str(path))
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))
    engine = class_engine.make_engine(class_engine.sqlite_url(path))
    class_schema.migrate(engine)
    open_classes(engine, ("7b",))
    yield engine
    engine.dispose()


@pytest.mark.parametrize("code, page, words", [
    ("7c", "app_pages/collect.py", "There is no class 7c"),
    ("7b-zzzzzz", "app_pages/collect.py", "There is no class 7b-zzzzzz"),
    ("nobody", "app_pages/class_dashboard.py", "There is no class nobody"),
    ("nobody", "app_pages/teach.py", "There is no class nobody"),
    ("7b%00", "app_pages/collect.py", "not a class code"),
    ("../../etc", "app_pages/class_dashboard.py", "not a class code"),
])
def test_a_class_nobody_started_cannot_be_joined_or_read(class_db, code, page, words):
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["class"] = code
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    assert words in " | ".join(e.value for e in at.error)
    assert not at.get("download_button") and not at.dataframe
    clean(shown(at))


def test_a_flag_for_a_class_nobody_started_is_not_saved(class_db, monkeypatch):
    """'Wrong? It was a ...' with a made-up ?class= saves nothing (the store refuses)."""
    with pytest.raises(class_engine.ClassStoreError, match="no open class 7c"):
        cs.save_digit(class_db, cs.Digit(cs.new_digit_id(), "7c", "kid", 1, "flag-draw",
                                         np.zeros((28, 28), np.uint8)))
    assert len(cs.load_class(class_db, "7c")) == 0


# ---------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------

def _predict_cases(tmp: Path) -> list:
    sparse = tmp / "sparse.png"
    with open(sparse, "wb") as f:
        f.truncate(6 * 2**30)                           # 6 GB, no disk used
    (tmp / "folder.png").mkdir()
    (tmp / "eps.png").write_bytes(UPLOAD_CASES[0][1])
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "bomb.png").write_bytes(_png_header_only(60_000, 60_000))
    (tmp / "text.jpg").write_bytes(b"not a picture")
    return [
        ("/dev/zero", "not a regular file"),
        (str(sparse), "file is 6,144 MB; the limit is 20 MB"),
        (str(tmp / "folder.png"), "not a regular file"),
        (str(tmp / "missing.png"), "no such file"),
        (str(tmp / "eps.png"), "not a readable image"),
        (str(tmp / "empty.png"), "not a readable image"),
        (str(tmp / "bomb.png"), "megapixels"),
        (str(tmp / "text.jpg"), "not a readable image"),
    ]


PREDICT_IDS = ["dev-zero", "sparse-6GB", "folder", "missing", "eps", "empty", "bomb", "text"]


@pytest.mark.parametrize("case", range(len(PREDICT_IDS)), ids=PREDICT_IDS)
def test_cli_predict_refuses_each_bad_input_and_exits_1(tiny_artifacts, tmp_path, capsys, case):
    import cv2
    from conftest import draw_digit
    path, words = _predict_cases(tmp_path)[case]
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), draw_digit(3))
    rc = cli.main(["predict", "--json", "--artifacts", str(tiny_artifacts.directory), path,
                   str(good)])
    out, err = capsys.readouterr()
    assert out.count("\n") == 2, (rc, out, err)
    bad, fine = (json.loads(line) for line in out.splitlines())
    assert rc == 1 and bad["path"] == path and words in bad["error"], bad
    assert "models" in fine                          # the rest of the batch still read
    assert "1 of 2 images could not be read" in err
    clean(bad["error"] + err)


def test_cli_predict_reads_the_apps_artifacts_folder(tiny_artifacts, tmp_path, monkeypatch,
                                                     capsys):
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(tmp_path / "nowhere"))
    assert cli.main(["predict", "x.png"]) == 2
    assert "nowhere/manifest.json is missing" in capsys.readouterr().err
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(tiny_artifacts.directory))
    assert cli.main(["predict", "--json", str(tmp_path / "none.png")]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "no such file"


def _idx(magic: int, dims: tuple, body: bytes) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims) + body


def _evaluate_cases(tmp: Path) -> list:
    def folder(name, **files):
        d = tmp / name
        d.mkdir()
        for f, data in files.items():
            (d / f).write_bytes(data)
        return str(d)

    ok_labels = gzip.compress(_idx(2049, (1,), b"\x01"))
    ok_images = gzip.compress(_idx(2051, (1, 28, 28), bytes(784)))
    bomb = gzip.compress(_idx(2051, (1, 28, 28), bytes(784)) + bytes(50 * 2**20), 9)
    return [
        (folder("bomb", **{"train-images-idx3-ubyte.gz": bomb,
                           "train-labels-idx1-ubyte.gz": ok_labels,
                           "t10k-images-idx3-ubyte.gz": ok_images,
                           "t10k-labels-idx1-ubyte.gz": ok_labels}),
         "holds more data than its header promises"),
        (folder("huge", **{"train-images-idx3-ubyte.gz": gzip.compress(
            _idx(2051, (10**6, 28000, 28), b"")),
            "train-labels-idx1-ubyte.gz": ok_labels, "t10k-images-idx3-ubyte.gz": ok_images,
            "t10k-labels-idx1-ubyte.gz": ok_labels}), "header promises 784,000,000,000 bytes"),
        (folder("truncgz", **{"train-images-idx3-ubyte.gz": ok_images[:30],
                              "train-labels-idx1-ubyte.gz": ok_labels,
                              "t10k-images-idx3-ubyte.gz": ok_images,
                              "t10k-labels-idx1-ubyte.gz": ok_labels}), "corrupt or truncated"),
        (folder("csvline", **{"mnist_train.csv": b"0," * 20_000}) + "/mnist_train.csv",
         "line 1 is longer than 16 KB"),
        (folder("empty"), "found no IDX files"),
        (str(tmp / "nowhere"), "no such file or folder"),
    ]


EVALUATE_IDS = ["idx-gzip-bomb", "idx-header-10e11", "idx-truncated-gzip", "csv-long-line",
                "empty-folder", "missing"]


@pytest.mark.parametrize("case", range(len(EVALUATE_IDS)), ids=EVALUATE_IDS)
def test_cli_evaluate_refuses_bad_data_with_a_message(tiny_artifacts, tmp_path, capsys, case):
    path, words = _evaluate_cases(tmp_path)[case]
    rc = cli.main(["evaluate", "--json", "--data", path, "--artifacts",
                   str(tiny_artifacts.directory)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and words in err, err
    assert "Traceback" not in err


def test_cli_evaluate_data_file_reads_that_file(tiny_artifacts, tmp_path, capsys):
    """``--data DIR/my.csv`` scores my.csv, not DIR/train.csv beside it."""
    x = np.zeros((12, 784), np.uint8)
    labels = np.arange(12) % 10
    table = "\n".join(",".join(map(str, [int(y), *r])) for y, r in zip(labels, x)) + "\n"
    (tmp_path / "my.csv").write_text(table)
    (tmp_path / "train.csv").write_text("label,pixel0\n1,2\n")     # would fail if read
    assert cli.main(["evaluate", "--json", "--data", str(tmp_path / "my.csv"), "--artifacts",
                     str(tiny_artifacts.directory)]) == 0, capsys.readouterr().err
    results = json.loads(capsys.readouterr().out)
    assert {r["n"] for r in results.values()} == {2}               # 12 // 6 carved to test


# ---------------------------------------------------------------------------------------
# Artifacts checked against their manifest
# ---------------------------------------------------------------------------------------

def test_a_model_file_of_another_architecture_is_refused_naming_it(tiny_artifacts, tmp_path,
                                                                   capsys):
    import shutil

    from mnist_core.artifacts.files import MANIFEST, write_manifest
    folder = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts.directory, folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["models"]["numpy"]["arch"] = {"type": "NumpyConfig", "hidden": [3]}  # not the file's
    write_manifest(folder, {k: v for k, v in manifest.items() if k not in ("files", "versions")})
    assert cli.main(["predict", "--artifacts", str(folder), "x.png"]) == 2
    err = capsys.readouterr().err
    assert "artifacts/numpy.npz is not the architecture manifest.json records for numpy" in err
    clean(err)
