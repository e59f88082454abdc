"""The class store (mnist_core.classroom: class_schema, class_store, class_archive,
class_engine) on SQLite and on a real PostgreSQL (tests/class_db.py): schema migrations,
idempotent saves (also 10 threads at once), queries, deletes, export read back by
mnist_core.datasets.data, import all-or-nothing, and database failures as readable errors."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa

import app_helpers as h
from class_db import open_classes, pg_url, store_engine, store_url  # noqa: F401  (fixtures)
from mnist_core.classroom import (class_access, class_archive, class_engine, class_schema,
                                  class_store as cs)
from mnist_core.datasets.data import load_dataset

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)


def digit(label: int, writer: str = "w-aaaaaa", code: str = "7b", seed: int = 0,
          source: str = "collect", minutes: int = 0, **kw) -> cs.Digit:
    return cs.Digit(cs.new_digit_id(), code, writer, label, source, image(seed),
                    {"numpy": label, "cnn": (label + 1) % 10}, created_at=T0 + timedelta(minutes=minutes),
                    **kw)


def fill(engine, code="7b", writers=("ana", "ben", "cy", "dee", "eli"), per=10) -> list[cs.Digit]:
    saved = []
    for w, name in enumerate(writers):
        for k in range(per):
            d = digit(k % 10, name, code, seed=100 * w + k, minutes=len(saved))
            assert cs.save_digit(engine, d)
            saved.append(d)
    return saved


def rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count())
                            .select_from(class_schema.digits_table)).scalar_one()


# -- schema -------------------------------------------------------------------------------

def test_schema_is_created_then_left_alone(store_url):
    engine = class_engine.make_engine(store_url)
    assert class_schema.schema_version(engine) == 0
    assert class_schema.migrate(engine) == class_schema.LATEST == 3
    assert class_schema.schema_version(engine) == class_schema.LATEST
    open_classes(engine)
    assert cs.save_digit(engine, digit(3))
    assert class_schema.migrate(engine) == class_schema.LATEST and rows(engine) == 1
    engine.dispose()


def save_as_version_1(engine, d: cs.Digit) -> None:
    """A digit saved as the app did before classes had PINs (no classes table)."""
    with engine.begin() as conn:
        cs.insert_ignoring_duplicates(conn, [cs.to_row(d, class_engine.DEFAULT)])


def test_upgrade_from_version_1_keeps_the_rows(store_url):
    engine = class_engine.make_engine(store_url)
    assert class_schema.migrate(engine, target=1) == 1
    with engine.connect() as conn:
        assert "ix_class_digits_class_writer" not in {
            i["name"] for i in sa.inspect(conn).get_indexes("class_digits")}
    save_as_version_1(engine, digit(4))
    assert class_schema.migrate(engine, target=2) == 2 and class_schema.schema_version(engine) == 2
    with engine.connect() as conn:
        assert "ix_class_digits_class_writer" in {
            i["name"] for i in sa.inspect(conn).get_indexes("class_digits")}
    assert cs.load_class(engine, "7b").labels.tolist() == [4]
    engine.dispose()


def test_upgrade_to_version_3_closes_the_old_classes_until_claimed(store_url):
    engine = class_engine.make_engine(store_url)
    class_schema.migrate(engine, target=2)
    save_as_version_1(engine, digit(4, code="7b"))
    save_as_version_1(engine, digit(5, code="old"))
    assert class_schema.migrate(engine) == 3
    assert class_access.class_state(engine, "7b") == class_access.CLOSED
    assert class_access.class_state(engine, "old") == class_access.CLOSED
    assert class_access.class_state(engine, "nobody") is None
    assert cs.load_class(engine, "7b").labels.tolist() == [4]      # nothing lost
    with pytest.raises(class_engine.ClassStoreError, match="no open class 7b") as info:
        cs.save_digit(engine, digit(6, code="7b"))                  # closed: no new digits
    assert info.value.kind == "no-class"
    cheap = class_access.AccessConfig(scrypt_n=2**4)
    no_admin = class_access.unlock(engine, "7b", "anything", "c1", cheap)
    assert not no_admin.ok and "no teacher PIN" in no_admin.message
    assert not class_access.unlock(engine, "7b", "wrong", "c1", cheap, admin_pin="admin9").ok
    assert class_access.unlock(engine, "7b", "admin9", "c1", cheap, admin_pin="admin9").ok
    class_access.set_pin(engine, "7b", "own-pin-7b", cheap)
    assert class_access.class_state(engine, "7b") == class_access.OPEN
    assert class_access.unlock(engine, "7b", "own-pin-7b", "c1", cheap).ok
    assert not class_access.unlock(engine, "7b", "admin9", "c2", cheap, admin_pin="admin9").ok
    assert cs.save_digit(engine, digit(6, code="7b"))
    engine.dispose()


def test_a_newer_schema_is_refused(store_engine):
    with store_engine.begin() as conn:
        conn.execute(class_schema.schema_table.update().values(version=class_schema.LATEST + 1))
    with pytest.raises(class_engine.ClassStoreError, match="newer than this app") as info:
        class_schema.migrate(store_engine)
    assert info.value.kind == "schema"


def test_migrating_from_several_threads_at_once(store_url):
    engines = [class_engine.make_engine(store_url) for _ in range(4)]
    errors = []

    def run(e):
        try:
            class_schema.migrate(e)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and class_schema.schema_version(engines[0]) == class_schema.LATEST
    for e in engines:
        e.dispose()


# -- saving -------------------------------------------------------------------------------

def test_a_retried_save_is_stored_once(store_engine):
    d = digit(3, strokes='{"objects": []}')
    assert cs.save_digit(store_engine, d) is True
    assert cs.save_digit(store_engine, d) is False
    assert rows(store_engine) == 1
    got = cs.load_class(store_engine, "7b")
    assert got.ids == [d.id] and got.labels.tolist() == [3] and got.writers == ["w-aaaaaa"]
    assert np.array_equal(got.images[0], d.image) and got.images.dtype == np.uint8
    assert got.answers == [{"numpy": 3, "cnn": 4}] and got.strokes == ['{"objects": []}']
    assert got.sources == ["collect"]


def test_float_images_are_stored_as_uint8(store_engine):
    x = np.zeros((28, 28), np.float32)
    x[10:18, 12:16] = 1.0
    x[0, 0] = 0.5
    cs.save_digit(store_engine, cs.Digit(cs.new_digit_id(), "7b", "w-1", 1, "flag-draw", x))
    got = cs.load_class(store_engine, "7b").images[0]
    assert got[12, 13] == 255 and got[0, 0] == 128 and got[0, 1] == 0


def test_ten_threads_saving_at_once_lose_and_duplicate_nothing(store_engine):
    per = [[digit(k % 10, f"w-{t}", seed=t * 100 + k) for k in range(8)] for t in range(10)]
    errors = []

    def run(batch):
        try:
            for d in batch:
                cs.save_digit(store_engine, d)
                cs.save_digit(store_engine, d)   # every save retried once
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(b,)) for b in per]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    ids = [d.id for b in per for d in b]
    assert set(cs.count_ids(store_engine, ids).values()) == {1}
    assert rows(store_engine) == 80


@pytest.mark.parametrize("change, message", [
    (dict(class_code="7B!"), "class code"),
    (dict(class_code="x" * 17), "class code"),
    (dict(writer="a" * 25), "nickname"),
    (dict(writer="<script>"), "nickname"),
    (dict(label=10), "label"),
    (dict(label=-1), "label"),
    (dict(source="elsewhere"), "source"),
    (dict(id="not-a-uuid"), "UUID|hexadecimal"),
    (dict(image=np.zeros((28, 27), np.uint8)), "28x28"),
    (dict(image=np.full((28, 28), 2.0, np.float32)), r"\[0, 1\]"),
])
def test_a_bad_digit_is_refused_and_nothing_is_stored(store_engine, change, message):
    from dataclasses import replace
    with pytest.raises(ValueError, match=message):
        cs.save_digit(store_engine, replace(digit(3), **change))
    assert rows(store_engine) == 0


@pytest.mark.parametrize("typed, expected", [("7b", "7b"), (" 7B ", "7b"), ("year-5", "year-5")])
def test_class_codes_are_normalised(typed, expected):
    assert cs.check_class_code(typed) == expected


@pytest.mark.parametrize("typed", ["", "  ", "7 b", "7b;drop", "é", "x" * 17])
def test_bad_class_codes_say_what_a_code_is(typed):
    with pytest.raises(ValueError, match="class code"):
        cs.check_class_code(typed)


# -- queries and deletes --------------------------------------------------------------------

def test_queries_keep_classes_apart(store_engine):
    fill(store_engine, "7b", writers=("ana", "ben"), per=10)
    fill(store_engine, "8a", writers=("cy",), per=4)
    assert cs.count_by_label(store_engine, "7b") == {d: 2 for d in range(10)}
    assert cs.count_by_label(store_engine, "7b", writer="ana") == {d: 1 for d in range(10)}
    eight = cs.count_by_label(store_engine, "8a")
    assert eight == {0: 1, 1: 1, 2: 1, 3: 1, **{d: 0 for d in range(4, 10)}}
    got = cs.load_class(store_engine, "7b")
    assert len(got) == 20 and got.writers == ["ana"] * 10 + ["ben"] * 10
    assert got.labels.tolist() == list(range(10)) * 2     # oldest first
    assert len(cs.load_class(store_engine, "nobody")) == 0


def test_undo_deletes_one_digit_of_its_class_only(store_engine):
    saved = fill(store_engine, "7b", writers=("ana",), per=3)
    assert not cs.delete_digit(store_engine, "8a", saved[-1].id)   # another class: untouched
    assert cs.delete_digit(store_engine, "7b", saved[-1].id)
    assert not cs.delete_digit(store_engine, "7b", saved[-1].id)
    assert cs.load_class(store_engine, "7b").ids == [d.id for d in saved[:2]]


def test_delete_class_leaves_the_others(store_engine):
    fill(store_engine, "7b", writers=("ana",), per=5)
    fill(store_engine, "8a", writers=("ben",), per=3)
    assert cs.delete_class(store_engine, "7b") == 5
    assert len(cs.load_class(store_engine, "7b")) == 0 and len(cs.load_class(store_engine, "8a")) == 3


# -- export and import ----------------------------------------------------------------------

def unzip(data: bytes, folder):
    zipfile.ZipFile(io.BytesIO(data)).extractall(folder)
    return folder


def test_export_is_read_back_by_mnist_core_data(store_engine, tmp_path):
    saved = fill(store_engine, "7b")
    got = cs.load_class(store_engine, "7b")
    folder = unzip(class_archive.export_zip(got, "7b"), tmp_path / "export")
    meta = json.loads((folder / "class.json").read_text())
    test_writers = {d["writer"] for d in meta["digits"] if d["split"] == "test"}
    train_writers = {d["writer"] for d in meta["digits"] if d["split"] == "train"}
    assert test_writers and train_writers and not test_writers & train_writers
    assert sorted((folder / n).name for n in folder.iterdir()) == sorted([
        "class.json", "mnist.npz", "mnist_train.csv", "mnist_test.csv",
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
    by_id = {d.id: d for d in saved}
    order = [d["id"] for d in meta["digits"]]
    want_x = np.stack([by_id[i].image for i in order])
    want_y = np.array([by_id[i].label for i in order], np.uint8)
    for path in (folder, folder / "mnist_train.csv", folder / "mnist.npz"):
        ds = load_dataset(path)
        assert len(ds.x_train) == meta["n_train"] and len(ds.x_test) == meta["n_test"] == 10
        assert np.array_equal(np.concatenate([ds.x_train, ds.x_test]), want_x), path
        assert np.array_equal(np.concatenate([ds.y_train, ds.y_test]), want_y), path


def test_single_writer_export_still_has_a_test_split(store_engine, tmp_path):
    fill(store_engine, "7b", writers=("solo",), per=10)
    export = class_archive.export_zip(cs.load_class(store_engine, "7b"), "7b")
    ds = load_dataset(unzip(export, tmp_path / "e"))
    assert (len(ds.x_train), len(ds.x_test)) == (8, 2)


def test_import_into_another_class_once(store_engine):
    fill(store_engine, "7b", writers=("ana", "ben"), per=5)
    data = class_archive.export_zip(cs.load_class(store_engine, "7b"), "7b")
    assert class_archive.import_export(store_engine, data, "8a") == (10, 0)
    assert class_archive.import_export(store_engine, data, "8a") == (0, 10)     # twice: nothing new
    assert class_archive.import_export(store_engine, data, "7b") == (0, 10)  # back home: same ids
    a, b = cs.load_class(store_engine, "7b"), cs.load_class(store_engine, "8a")
    assert np.array_equal(a.images, b.images) and a.writers == b.writers
    assert not set(a.ids) & set(b.ids) and rows(store_engine) == 20


def _rezip(data: bytes, **replace: bytes | None) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in src.namelist():
            if name in replace:
                if replace[name] is not None:
                    z.writestr(name, replace[name])
            else:
                z.writestr(name, src.read(name))
    return out.getvalue()


def _bad_label(data: bytes) -> bytes:
    meta = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("class.json"))
    meta["digits"][3]["label"] = (meta["digits"][3]["label"] + 1) % 10
    return _rezip(data, **{"class.json": json.dumps(meta).encode()})


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: b"label,pixel0\n1,2\n", "not a readable class export"),
    (lambda d: d[: len(d) // 2], "not a readable class export"),
    (lambda d: _rezip(d, **{"class.json": None}), "not a class export"),
    (lambda d: _rezip(d, **{"class.json": b'{"format": "other"}'}), "not from an MNIST Studio"),
    (lambda d: _rezip(d, **{"class.json": b"{nope"}), "not a readable class export"),
    (lambda d: _rezip(d, **{"mnist.npz": b"PK\x03\x04junk"}), "not a readable class export"),
    (_bad_label, "damaged at digit 4"),
    (lambda d: h.png_bytes(np.zeros((8, 8), np.uint8)), "not a readable class export"),
])
def test_a_corrupt_or_foreign_import_changes_nothing(store_engine, corrupt, message):
    fill(store_engine, "7b", writers=("ana", "ben"), per=5)
    good = class_archive.export_zip(cs.load_class(store_engine, "7b"), "7b")
    before = rows(store_engine)
    with pytest.raises(class_archive.ImportFileError, match=message):
        class_archive.import_export(store_engine, corrupt(good), "8a")
    assert rows(store_engine) == before and len(cs.load_class(store_engine, "8a")) == 0


def test_an_import_over_the_size_limit_is_refused_unread(store_engine):
    from dataclasses import replace
    with pytest.raises(class_archive.ImportFileError, match="at most 1 MB"):
        class_archive.import_export(store_engine, b"x" * 2_000_000, "8a",
                         replace(class_engine.DEFAULT, max_import_bytes=1_000_000))


# -- the database failing -------------------------------------------------------------------

def closed_port_url(backend: str, tmp_path) -> str:
    if backend == "postgresql":
        return f"postgresql+psycopg://postgres@127.0.0.1:{h.free_port()}/postgres"
    return f"sqlite:///{tmp_path / 'no-such-folder' / 'c.sqlite'}"   # never created


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_unreachable_database_says_so(backend, tmp_path):
    engine = class_engine.make_engine(closed_port_url(backend, tmp_path))
    with pytest.raises(class_engine.ClassStoreError) as info:
        class_schema.migrate(engine)
    assert info.value.kind == "unreachable" and "cannot be reached" in str(info.value)
    with pytest.raises(class_engine.ClassStoreError, match="cannot be reached"):
        cs.save_digit(engine, digit(1))


def test_a_read_only_sqlite_file_says_so(tmp_path):
    path = tmp_path / "c.sqlite"
    rw = class_engine.make_engine(class_engine.sqlite_url(path))
    class_schema.migrate(rw)
    open_classes(rw)
    # mode=ro, not chmod: the tests may run as root, whom file modes do not stop.
    ro = class_engine.make_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert len(cs.load_class(ro, "7b")) == 0            # reading still works
    with pytest.raises(class_engine.ClassStoreError, match="read-only") as info:
        cs.save_digit(ro, digit(2))
    assert info.value.kind == "read-only"


def test_a_locked_sqlite_file_says_so(tmp_path):
    from dataclasses import replace
    url = class_engine.sqlite_url(tmp_path / "c.sqlite")
    class_schema.migrate(class_engine.make_engine(url))
    holder = class_engine.make_engine(url)
    open_classes(holder)
    impatient = class_engine.make_engine(url, replace(class_engine.DEFAULT, sqlite_busy_ms=200))
    with holder.connect().execution_options(sqlite_immediate=True) as conn:
        conn.begin()                                   # holds the write lock
        with pytest.raises(class_engine.ClassStoreError, match="busy") as info:
            cs.save_digit(impatient, digit(5))
        assert info.value.kind == "locked"
        conn.rollback()
    assert cs.save_digit(impatient, digit(5))          # free again


def test_a_full_sqlite_file_says_so(tmp_path):
    url = class_engine.sqlite_url(tmp_path / "c.sqlite")
    engine = class_engine.make_engine(url)
    class_schema.migrate(engine)
    open_classes(engine)
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    @sa.event.listens_for(engine, "connect")
    def cap(dbapi_conn, _):                            # a disk with no room for another page
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")
    engine.dispose()
    with pytest.raises(class_engine.ClassStoreError, match="full") as info:
        for k in range(50):
            cs.save_digit(engine, digit(k % 10, seed=k))
    assert info.value.kind == "full"


def test_postgres_env_points_at_a_live_server_when_set():
    """With $CLASSROOM_TEST_PG_URL set (scripts/test.sh), the server must answer."""
    url = pg_url()
    if url is None:
        pytest.skip("$CLASSROOM_TEST_PG_URL is not set")
    with sa.create_engine(url, connect_args={"connect_timeout": 5}).connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1


# -- teaching: the writer split and the training mix (mnist_core.classroom.finetune) -----------------

def test_finetune_split_never_puts_a_writer_on_both_sides():
    from mnist_core.classroom.finetune import FinetuneConfig, split_by_writer
    rng = np.random.default_rng(3)
    for n_writers in (2, 3, 5, 12, 30):
        writers = [f"w{int(i)}" for i in rng.integers(0, n_writers, 400)]
        writers += [f"w{i}" for i in range(n_writers)]        # every writer present
        for seed in range(4):
            s = split_by_writer(writers, FinetuneConfig(seed=seed))
            train = {writers[i] for i in s.train}
            held = {writers[i] for i in s.held_out}
            assert train and held and not train & held, (n_writers, seed)
            assert train == set(s.train_writers) and held == set(s.held_out_writers)
            assert len(s.train) + len(s.held_out) == len(writers)
            assert sorted(np.concatenate([s.train, s.held_out])) == list(range(len(writers)))
    again = [split_by_writer(["a", "b", "c"] * 3) for _ in range(2)]   # repeatable
    assert again[0].held_out_writers == again[1].held_out_writers
    assert np.array_equal(again[0].held_out, again[1].held_out)


def test_finetune_needs_two_writers():
    from mnist_core.classroom.finetune import NotEnoughWriters, split_by_writer
    with pytest.raises(NotEnoughWriters, match="at least 2 writers"):
        split_by_writer(["solo"] * 20)


def test_finetune_training_set_mixes_class_and_replay_and_tests_on_held_out():
    from conftest import make_dataset

    from mnist_core.classroom.finetune import FinetuneConfig, split_by_writer, training_set
    mnist = make_dataset(n_train=500, n_test=50)
    writers = ["ana"] * 10 + ["ben"] * 10 + ["cy"] * 10
    images = np.stack([image(i) for i in range(30)])
    labels = (np.arange(30) % 10).astype(np.uint8)
    cfg = FinetuneConfig(replay=200, class_repeats=3, held_out_share=0.34)
    s = split_by_writer(writers, cfg)
    ds = training_set(images, labels, s, mnist, cfg)
    assert len(ds.x_train) == 3 * len(s.train) + 200 and ds.x_train.dtype == np.uint8
    assert np.array_equal(ds.x_test, images[s.held_out]) and np.array_equal(ds.y_test, labels[s.held_out])
    held_set = {images[i].tobytes() for i in s.held_out}
    assert not any(x.tobytes() in held_set for x in ds.x_train)   # nothing held out trains
    class_rows = [x.tobytes() for x in ds.x_train if x.tobytes() in {images[i].tobytes() for i in s.train}]
    assert len(class_rows) == 3 * len(s.train)


def test_warm_arch_builds_the_trained_network(tiny_artifacts):
    """Teaching starts from the shipped weights: the config the worker unpickles builds the
    trained network itself, not a fresh one."""
    import pickle

    from mnist_core.artifacts.files import load_models
    from mnist_core.classroom.finetune import warm_arch
    from mnist_core.models.architectures import build_net
    from mnist_core.training.train import start_net
    models = load_models(tiny_artifacts.directory)
    arch = pickle.loads(pickle.dumps(warm_arch(models["numpy"])))
    x = np.random.default_rng(0).random((5, 784)).astype(np.float32)
    shipped = models["numpy"].network.predict_proba(x)
    assert np.array_equal(start_net(arch, 0).predict_proba(x), shipped)
    fresh = build_net(type(arch).__mro__[1](**{k: getattr(arch, k) for k in ("hidden",)}), 0)
    assert not np.allclose(fresh.predict_proba(x), shipped)
    assert warm_arch(models["lenet5"]) is None          # not one of numpy, dense, cnn


def test_finetune_train_config_is_the_shipped_one_in_small_steps():
    from mnist_core.training.augment import NONE
    from mnist_core.classroom.finetune import DEFAULT, train_config
    from mnist_core.artifacts.registry import REGISTRY
    for name in ("numpy", "dense", "cnn"):
        cfg, base = train_config(name, 3, 1000), REGISTRY[name].train
        assert cfg.epochs == 3 and cfg.augment == NONE and cfg.writers_share == 0.0
        assert cfg.n_train is None and cfg.n_val == 1000 // DEFAULT.val_share
        assert cfg.lr == pytest.approx(base.lr * DEFAULT.lr_scale)
        assert (cfg.batch_size, cfg.weight_decay, cfg.seed) == (base.batch_size,
                                                                base.weight_decay, base.seed)
    assert train_config("numpy", 1, 3).n_val == 1          # always something to validate on


def test_finetune_starts_from_the_shipped_weights_else_the_live_architecture(tiny_artifacts):
    from mnist_core.artifacts.files import load_models
    from mnist_core.classroom.finetune import WarmNumpy, start_arch
    from mnist_core.artifacts.registry import REGISTRY
    models = load_models(tiny_artifacts.directory)
    assert isinstance(start_arch("numpy", models), WarmNumpy)
    assert start_arch("cnn", models) == REGISTRY["cnn"].live_arch     # none shipped here
