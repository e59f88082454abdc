"""Real writers in training: loading, the writer split, the stroke styles, rendering into
model inputs, the per-epoch mix and the per-writer scores (:mod:`mnist_core.training.writers`)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from mnist_core.training import augment
from mnist_core.training import writers
from mnist_core.training.config import TrainConfig
from mnist_core.training.feed import EpochFeeder


def _circle(n: int = 40, cx: float = 100, cy: float = 150, rx: float = 60, ry: float = 100):
    t = np.linspace(0, 2 * np.pi, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1).astype(np.float32)


def _line(*points) -> np.ndarray:
    return np.asarray(points, np.float32)


SHAPES = {
    0: [_circle()],
    1: [_line((100, 0), (100, 200))],
    2: [np.concatenate([_circle(20, 100, 60, 60, 50)[10:], _line((40, 200), (160, 200))])],
    4: [_line((60, 0), (30, 130), (170, 130)), _line((120, 40), (120, 220))],
    7: [_line((20, 0), (180, 0), (80, 220))],
    9: [np.concatenate([_circle(20, 100, 60, 50, 50), _line((150, 60), (150, 220))])],
}


def _ink(strokes) -> np.ndarray:
    img = writers.model_input(writers.render(strokes, "canvas", np.random.default_rng(0)), "canvas")
    assert img is not None
    return img


def _write_jsonl(path, digits) -> None:
    with open(path, "w") as f:
        for label, writer, strokes in digits:
            f.write(json.dumps({"label": label, "writer": writer,
                                "strokes": [s.round().astype(int).tolist() for s in strokes]}) + "\n")


@pytest.fixture()
def pen_file(tmp_path):
    digits = [(label, f"w{k}", SHAPES[label]) for k in range(5) for label in SHAPES]
    _write_jsonl(tmp_path / writers.FILENAME, digits)
    return tmp_path


def test_load_reads_labels_writers_and_strokes(pen_file):
    pen = writers.load(pen_file)
    assert len(pen.labels) == 5 * len(SHAPES)
    assert sorted(set(pen.writers.tolist())) == [f"w{k}" for k in range(5)]
    assert [len(s) for s in pen.strokes[:len(SHAPES)]] == [len(s) for s in SHAPES.values()]
    assert pen.strokes[0][0].dtype == np.float32 and pen.strokes[0][0].shape[1] == 2


def test_missing_strokes_file_says_where_it_looked_and_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv(writers.ENV_VAR, str(tmp_path / "nowhere"))
    monkeypatch.setattr(writers, "DEFAULT_DIR", tmp_path / "also-nowhere")
    with pytest.raises(writers.WritersMissing, match=writers.ENV_VAR):
        writers.load()
    lines = []
    from types import SimpleNamespace
    data = SimpleNamespace(name="mnist")
    assert writers.with_writers(data, log=lines.append) is data
    assert lines and "alone" in lines[0]


def test_writer_split_is_disjoint_seeded_and_sized():
    ids = np.array([f"train-{k}" for k in range(30) for _ in range(3)])
    train, held = writers.split_writers(ids, writers.WriterMix(held_out=6, seed=3))
    assert len(held) == 6 and len(train) == 24
    assert not set(train) & set(held)
    assert set(train) | set(held) == set(ids.tolist())
    assert writers.split_writers(ids, writers.WriterMix(held_out=6, seed=3)) == (train, held)
    assert writers.split_writers(ids, writers.WriterMix(held_out=6, seed=4))[1] != held


@pytest.mark.parametrize("name", sorted(augment.STROKE_STYLES))
def test_each_style_changes_its_digit_and_leaves_the_input_alone(name):
    digit, fn = augment.STROKE_STYLES[name]
    strokes = SHAPES[digit]
    before = [s.copy() for s in strokes]
    styled = fn(strokes, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(strokes, before))
    assert not np.array_equal(_ink(styled), _ink(strokes))


def test_styles_have_the_shapes_they_name():
    rng = np.random.default_rng(0)
    slash = augment.slashed_zero(SHAPES[0], rng)[-1]
    assert slash[0, 0] < slash[-1, 0] and slash[0, 1] > slash[-1, 1]   # bottom left -> top right
    bar = augment.crossed_seven(SHAPES[7], rng)[-1]
    assert np.ptp(bar[:, 1]) == 0 and 60 < bar[0, 1] < 160            # level, about half way
    flag = augment.flagged_one(SHAPES[1], rng)[0]
    assert flag[0, 0] < 100 and flag[-1, 1] == 0                      # ends at the top, from the left
    loop = augment.looped_two(SHAPES[2], rng)[0]
    assert len(loop) > len(SHAPES[2][0])
    curl = augment.curled_nine(SHAPES[9], rng)[0]
    assert curl[-1, 0] < 150                                           # the tail turns left
    four = augment.open_four(SHAPES[4], rng)
    assert len(four) == 1                                              # one stroke
    assert four[0][:, 1].min() < 40                                   # that climbs the stem


def test_digits_without_a_style_are_returned_unchanged():
    strokes = [_line((0, 0), (50, 100))]
    assert augment.apply_stroke_style(strokes, 3, np.random.default_rng(0)) is strokes


def test_training_images_are_model_inputs_seeded_and_cached(pen_file, tmp_path):
    pen = writers.load(pen_file)
    mix = writers.WriterMix(renders=2, held_out=1, style_rate=0.5)
    x, y = writers.training_images(pen, mix, workers=1, cache=tmp_path / "cache")
    assert x.dtype == np.uint8 and x.shape[1:] == (28, 28) and len(x) == len(y)
    assert len(y) == 2 * len(pen.labels)             # a digit was found in every rendering
    assert np.array_equal(y, np.repeat(pen.labels, 2))
    assert (x.reshape(len(x), -1).max(1) > 200).all()
    cached = list((tmp_path / "cache").glob("writers-*.npz"))
    assert len(cached) == 1
    x2, y2 = writers.training_images(pen, mix, workers=1, cache=tmp_path / "cache")
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    # A different seed renders differently (and is cached apart).
    x3, _ = writers.training_images(pen, writers.WriterMix(renders=2, held_out=1, seed=1),
                                    workers=1, cache=tmp_path / "cache")
    assert not np.array_equal(x, x3)


def test_training_set_uses_only_training_writers(pen_file, tmp_path, monkeypatch):
    monkeypatch.setenv(writers.CACHE_ENV_VAR, str(tmp_path / "cache"))
    mix = writers.WriterMix(renders=1, held_out=2, scans=1)
    x, y, record = writers.training_set(pen_file, mix)
    assert len(record["held_out_writers"]) == 2
    assert not set(record["held_out_writers"]) & set(record["training_writers"])
    # 3 training writers, one rendering each plus one scanned form each
    assert len(y) == 2 * 3 * len(SHAPES) and record["scanned_images"] == 3 * len(SHAPES)
    assert record["credit"] == writers.CREDIT
    x0, y0, record0 = writers.training_set(pen_file, writers.WriterMix(renders=1, held_out=2, scans=0))
    assert len(y0) == 3 * len(SHAPES) and record0["scanned_images"] == 0
    assert np.array_equal(x0, x[:len(x0)])           # the same renderings, scans after them


def test_scanned_renderings_are_cached_apart_from_canvas_and_photo(pen_file, tmp_path):
    pen = writers.load(pen_file)
    mix = writers.WriterMix(renders=2, held_out=1, scans=1)
    cache = tmp_path / "cache"
    xs, ys = writers.scan_images(pen, mix, workers=1, cache=cache)
    assert xs.dtype == np.uint8 and xs.shape[1:] == (28, 28)
    assert np.array_equal(ys, pen.labels[:len(ys)]) or len(ys) < len(pen.labels)
    assert len(ys) >= 0.9 * len(pen.labels)          # a digit found in (nearly) every scan
    assert len(list(cache.glob("writers-scans-*.npz"))) == 1
    # Other scans (a changed config) do not touch the canvas and photo renderings' key.
    other = replace(mix, scan=replace(augment.SCAN, box_p=0.0))
    assert writers._cache_key(pen, other) == writers._cache_key(pen, mix)
    assert writers._cache_key(pen, other, scans=True) != writers._cache_key(pen, mix, scans=True)
    again, _ = writers.scan_images(pen, mix, workers=1, cache=cache)
    assert np.array_equal(again, xs)
    assert writers.render(SHAPES[7], "scan", np.random.default_rng(0), mix).shape == (64, 64)


def test_each_epoch_mixes_in_the_writers_share():
    x = np.zeros((800, 28, 28), np.float32)
    y = np.zeros(800, np.int64)
    extra = (np.ones((1000, 28, 28), np.float32), np.full(1000, 7, np.int64))
    cfg = TrainConfig(epochs=2, writers_share=0.2, augment=augment.NONE)
    feeder = EpochFeeder(x, y, cfg, extra)
    try:
        xe, ye = feeder.get(0)
        assert len(xe) == 1000 and (ye == 7).sum() == 200       # 20% of the epoch
        assert (xe.reshape(len(xe), -1).max(1) == 1).sum() == 200
        xe1, ye1 = feeder.get(1)
        assert not np.array_equal(ye, ye1)                       # shuffled afresh each epoch
    finally:
        feeder.close()
    alone = EpochFeeder(x, y, TrainConfig(epochs=1, augment=augment.NONE), extra)
    try:
        assert len(alone.get(0)[0]) == 800                      # writers_share 0: MNIST only
    finally:
        alone.close()


def test_per_writer_summary():
    correct = np.array([1, 1, 1, 0, 1, 0, 0, 1], bool)
    ids = np.array(["a", "a", "a", "a", "b", "b", "c", "c"])
    s = writers.per_writer(correct, ids)
    assert s["writers"] == {"a": 0.75, "b": 0.5, "c": 0.5}
    assert s["mean"] == 5 / 8
    assert s["worst"] == 0.5 and s["worst_writer"] in {"b", "c"}
    assert s["worst_tenth"] == 0.5


def test_held_out_inputs_are_the_held_out_writers_read_by_the_app_and_cached(pen_file, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv(writers.CACHE_ENV_VAR, str(tmp_path / "cache"))
    mix = writers.WriterMix(held_out=2)
    inputs = writers.held_out_inputs(pen_file, mix)
    _, held = writers.split_writers(writers.load(pen_file).writers, mix)
    assert sorted(inputs) == ["writers-canvas", "writers-photo"]
    for x, found, labels, ids in inputs.values():
        assert x.dtype == np.float32 and x.shape == (2 * len(SHAPES), 28, 28)
        assert 0 <= x.min() and x.max() <= 1 and found.all()
        assert sorted(set(ids.tolist())) == held
    again = writers.held_out_inputs(pen_file, mix)     # from the cache
    for name in inputs:
        for a, b in zip(inputs[name], again[name]):
            assert np.array_equal(a, b)
    assert list((tmp_path / "cache").glob("held-*.npz"))
