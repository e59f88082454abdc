"""AppTest: Collect, the Class dashboard and the "Wrong? It was a ..." buttons on Draw and
Upload, against a SQLite file in a temporary folder (the storage itself is tested on both
backends in test_class_store.py); a database that is down or read-only gets a message
saying what was not saved, and the other pages keep working."""

from __future__ import annotations

import io
import sys
import types
import zipfile

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import app_helpers as h
from class_db import open_classes, pin_of
from test_app_draw import FakeCanvas as DrawFakeCanvas
from mnist_core.classroom import (class_access, class_archive, class_engine, class_schema,
                                  class_store as cs)
from mnist_core.artifacts.files import load_gallery
from mnist_core.datasets.data import load_dataset
from ui import class_data

TIMEOUT = 180
COLLECT = "app_pages/collect.py"
DASHBOARD = "app_pages/class_dashboard.py"


class FakeCanvas(DrawFakeCanvas):
    """Draw's stand-in for ``st_canvas``, starting blank; ``image`` is set between runs."""

    def __init__(self):
        super().__init__(None)

    @property
    def keys(self) -> list[str]:
        return [call["key"] for call in self.calls]


@pytest.fixture
def db(monkeypatch, tmp_path, artifacts):
    """The app's class database: a fresh SQLite file; returns its engine."""
    path = tmp_path / "classroom.sqlite"
    monkeypatch.setenv(class_data.DB_ENV, str(path))
    monkeypatch.setenv("MNIST_STUDIO_ARTIFACTS", str(artifacts))
    engine = class_engine.make_engine(class_engine.sqlite_url(path))
    class_schema.migrate(engine)
    open_classes(engine)      # 7b and 8a, as their teachers started them
    yield engine
    engine.dispose()


@pytest.fixture
def fake_canvas(monkeypatch):
    fake = FakeCanvas()
    module = types.ModuleType("streamlit_drawable_canvas")
    module.st_canvas = fake
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", module)
    return fake


@pytest.fixture(scope="module")
def gallery(artifacts):
    return load_gallery(artifacts)


def open_app(page: str | None = None, query: dict | None = None, secrets: dict | None = None
             ) -> AppTest:
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    for k, v in (secrets or {}).items():
        at.secrets[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    ok(at)
    return at


def ok(at):
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(elements) -> str:
    return " | ".join(e.value for e in elements)


def canvas_of(image28: np.ndarray) -> np.ndarray:
    return h.digits_on_canvas([image28])


# -- Collect ------------------------------------------------------------------------------

def test_collect_asks_for_a_class_code_first(db, fake_canvas):
    at = open_app(COLLECT)
    assert "Type your class code" in texts(at.info)
    assert not [k for k in fake_canvas.keys if k.startswith("collect")]  # none before a class
    at.text_input(key="collect-class").input("7B!").run()
    assert "at most 16 characters: lower-case letters" in texts(at.error)
    at.text_input(key="collect-class").input("7B").run()
    ok(at)
    assert at.query_params["class"] == "7b" and not at.error
    assert at.subheader[0].value.startswith("Draw a ")


def test_a_bad_class_in_the_address_gets_a_message(db, fake_canvas):
    at = open_app(COLLECT, query={"class": "Robert'); DROP TABLE"})
    assert "not a class code" in texts(at.error)
    at = open_app(COLLECT, query={"class": "x" * 500})
    assert "too long" in texts(at.error)


def test_save_skip_and_undo(db, fake_canvas, gallery):
    at = open_app(COLLECT, query={"class": "7b"})
    names = [str(d) for d in range(10)]
    asked = []
    for _ in range(3):                                # three saves: the page's prompt is the label
        target = int(at.subheader[0].value.removeprefix("Draw a "))
        asked.append(target)
        fake_canvas.image = canvas_of(gallery.images[int(np.flatnonzero(gallery.labels == target)[0])])
        ok(at.run())                                  # the drawing arrives: Save is enabled
        ok(at.button(key="collect-save").click().run())
        assert "Saved your" in texts(at.success)
        fake_canvas.image = None
    got = cs.load_class(db, "7b")
    assert got.labels.tolist() == asked and set(got.sources) == {"collect"}
    assert len(set(got.writers)) == 1 and got.writers[0].startswith("w-")
    assert all(set(a) == {"numpy", "lenet5"} for a in got.answers)
    counts = {m.label: m.value for m in at.metric}
    assert [counts[n] for n in names] == [str(asked.count(d)) for d in range(10)]
    assert len(set(fake_canvas.keys[-3:])) >= 2       # the canvas was cleared (new key)

    before = at.subheader[0].value
    ok(at.button(key="collect-skip").click().run())
    assert at.subheader[0].value != before and len(cs.load_class(db, "7b")) == 3

    ok(at.button(key="collect-undo").click().run())
    assert f"Removed your last {asked[-1]}" in texts(at.info)
    assert cs.load_class(db, "7b").labels.tolist() == asked[:2]


def test_save_with_nothing_drawn_saves_nothing(db, fake_canvas):
    at = open_app(COLLECT, query={"class": "7b"})
    assert at.button(key="collect-save").disabled
    fake_canvas.image = np.zeros((280, 280, 4), np.uint8)   # a drawing with no ink
    ok(at.run())
    ok(at.button(key="collect-save").click().run())
    assert "No ink found" in texts(at.warning)
    assert len(cs.load_class(db, "7b")) == 0


def test_a_nickname_is_the_writer(db, fake_canvas, gallery):
    at = open_app(COLLECT, query={"class": "7b"})
    at.text_input(key="collect-nickname").input("<b>bob</b>").run()
    assert "A nickname is" in texts(at.error)
    at.text_input(key="collect-nickname").input("Bob 2").run()
    fake_canvas.image = canvas_of(gallery.images[0])
    ok(at.run())
    ok(at.button(key="collect-save").click().run())
    assert cs.load_class(db, "7b").writers == ["Bob 2"]


@pytest.mark.parametrize("down", ["closed-port", "read-only"])
def test_database_down_says_what_was_not_saved(monkeypatch, db, fake_canvas, gallery,
                                               tmp_path, down):
    if down == "closed-port":
        url = f"postgresql+psycopg://postgres@127.0.0.1:{h.free_port()}/postgres"
    else:
        url = f"sqlite:///file:{tmp_path / 'classroom.sqlite'}?mode=ro&uri=true"
    at = open_app(COLLECT, query={"class": "7b"},
                  secrets={"connections": {"classroom": {"url": url}}})
    if down == "closed-port":   # nothing can be read either: the page says so and stops
        assert "cannot be reached" in texts(at.error)
    fake_canvas.image = canvas_of(gallery.images[0])
    target = at.subheader[0].value.removeprefix("Draw a ")
    ok(at.run())
    ok(at.button(key="collect-save").click().run())
    message = texts(at.error)
    assert f"Not saved:** your {target}; it is still on the canvas" in message
    assert ("cannot be reached" if down == "closed-port" else "read-only") in message
    assert "other pages" in message
    assert at.subheader[0].value == f"Draw a {target}"   # the same prompt: retry is possible
    at.switch_page("app_pages/draw.py").run()             # the rest of the app works
    ok(at)
    assert at.metric and not at.error


# -- Dashboard ------------------------------------------------------------------------------

def fill(engine, gallery, code="7b", writers=("ana", "ben", "cy"), per=10):
    rng = np.random.default_rng(0)
    for w in writers:
        for i in rng.choice(len(gallery.images), per, replace=False):
            cs.save_digit(engine, cs.Digit(cs.new_digit_id(), code, w, int(gallery.labels[i]),
                                           "collect", gallery.images[i]))


def unlock(at, code="7b", key="dashboard-pin"):
    return ok(at.text_input(key=key).input(pin_of(code)).run())


def test_dashboard_scores_every_model_on_the_class(db, gallery, models):
    fill(db, gallery)
    cs.save_digit(db, cs.Digit(cs.new_digit_id(), "7b", "dee", 3, "flag-draw",
                               np.zeros((28, 28), np.uint8)))   # a blank "3": every model misses
    at = unlock(open_app(DASHBOARD, query={"class": "7b"}))
    assert at.subheader[0].value == "31 digits from 4 writers"
    titles = [m.title for m in models.values()]
    shown = {m.label: m.value for m in at.metric}
    assert set(shown) == set(titles)
    for v in shown.values():
        assert v.endswith("%") and 0 <= float(v[:-1]) <= 100
    top = max(float(shown[t][:-1]) for t in titles)
    best = [t for t in titles if float(shown[t][:-1]) == top]
    assert " and ".join(f"**{t}**" for t in best) in texts(at.success)
    assert "class 7b's digits best" in texts(at.success)
    writers = at.dataframe[0].value
    assert set(writers["Writer"]) == {"ana", "ben", "cy", "dee"}
    assert writers.iloc[0]["Writer"] == "dee" and writers.iloc[0]["Mean"] == 0  # hardest first
    misses = at.dataframe[1].value
    assert "3" in list(misses["Label"]) and set(titles) <= set(misses.columns)
    assert len(at.get("plotly_chart")) == 2


def test_dashboard_of_an_empty_class(db):
    at = unlock(open_app(DASHBOARD, query={"class": "8a"}), "8a")
    assert "has no digits yet" in texts(at.info)
    assert at.get("file_uploader")                   # an empty class can still import


def test_dashboard_of_a_class_nobody_started(db):
    at = open_app(DASHBOARD, query={"class": "nobody"})
    assert "There is no class nobody" in texts(at.error)
    assert not at.get("download_button") and not at.dataframe


def test_a_class_is_shown_only_with_its_own_pin(db, gallery):
    fill(db, gallery, per=2)
    fill(db, gallery, code="8a", writers=("zed",), per=2)
    at = open_app(DASHBOARD, query={"class": "7b"})
    assert "shown only with its PIN" in texts(at.info)
    assert not at.get("download_button") and not at.checkbox and not at.dataframe
    assert "Who sees what" in texts(at.caption)
    at.text_input(key="dashboard-pin").input(pin_of("8a")).run()   # another class's PIN
    assert "not the PIN of class 7b" in texts(at.error) and not at.dataframe
    ok(at.run())                                       # a rerun checks nothing again
    assert "not the PIN of class 7b" in texts(at.error)
    unlock(at)
    assert at.get("download_button") and "zed" not in str(at.dataframe[0].value)


def test_wrong_pins_are_limited(db, gallery):
    at = open_app(DASHBOARD, query={"class": "7b"})
    for k in range(5):
        at.text_input(key="dashboard-pin").input(f"guess-{k}").run()
        assert "not the PIN of class 7b" in texts(at.error)
    unlock(at)                                           # the right one, too late
    assert "Too many wrong PINs from here: try again in 15 minutes" in texts(at.error)
    assert not at.get("download_button")


def test_a_teacher_starts_a_class_and_learners_join_it(db, fake_canvas, gallery):
    at = open_app(DASHBOARD)
    at.text_input(key="dashboard-new-name").input("5c").run()
    at.text_input(key="dashboard-new-pin").input("secret-5c").run()
    at.text_input(key="dashboard-new-again").input("secret-5x").run()
    assert "The two PINs differ" in texts(at.error)
    at.text_input(key="dashboard-new-again").input("secret-5c").run()
    ok(at.button(key="dashboard-new-go").click().run())
    code = at.query_params["class"]
    assert code.startswith("5c-") and len(code) == 9
    assert f"Class **{code}** started" in texts(at.success)
    assert "has no digits yet" in texts(at.info)        # opened: no PIN asked again
    learner = open_app(COLLECT, query={"class": code})
    assert learner.subheader[0].value.startswith("Draw a ")
    stranger = open_app(DASHBOARD, query={"class": code})
    assert "shown only with its PIN" in texts(stranger.info)
    assert not class_access.unlock(db, code, "secret-5x", "t", class_access.ACCESS).ok
    assert class_access.unlock(db, code, "secret-5c", "t", class_access.ACCESS).ok


def test_a_class_from_before_pins_is_claimed_with_the_deployment_pin(db, gallery):
    with db.begin() as conn:                              # saved before schema version 3
        conn.execute(class_schema.classes_table.insert().values(
            code="old", pin_hash=None, created_at=cs.datetime.now(cs.timezone.utc)))
        cs.insert_ignoring_duplicates(conn, [cs.to_row(cs.Digit(
            cs.new_digit_id(), "old", "ana", 4, "collect", gallery.images[0]), class_engine.DEFAULT)])
    learner = open_app(COLLECT, query={"class": "old"})
    assert "closed until its teacher opens it" in texts(learner.error)
    at = open_app(DASHBOARD, query={"class": "old"}, secrets={"classroom": {"teacher_pin": "4321"}})
    at.text_input(key="dashboard-pin").input("4321").run()
    assert "made before classes had their own PIN" in texts(at.warning) and not at.dataframe
    at.text_input(key="dashboard-set-pin-pin").input("own-pin-old").run()
    at.text_input(key="dashboard-set-pin-again").input("own-pin-old").run()
    ok(at.button(key="dashboard-set-pin-go").click().run())
    assert at.subheader[0].value == "1 digit from 1 writer"
    assert class_access.class_state(db, "old") == class_access.OPEN


def test_class_pin_unlocks_export_import_and_delete(db, gallery, tmp_path):
    fill(db, gallery, per=4)
    at = open_app(DASHBOARD, query={"class": "7b"})
    at.text_input(key="dashboard-pin").input("0000000").run()
    assert "not the PIN of class 7b" in texts(at.error) and not at.checkbox
    unlock(at)
    assert at.get("download_button")
    # The export the button serves, read back by mnist_core.datasets.data.
    export = class_archive.export_zip(cs.load_class(db, "7b"), "7b")
    zipfile.ZipFile(io.BytesIO(export)).extractall(tmp_path / "e")
    ds = load_dataset(tmp_path / "e")
    assert len(ds.x_train) + len(ds.x_test) == 12
    at.checkbox(key="dashboard-delete-sure").check().run()
    ok(at.button(key="dashboard-delete").click().run())
    assert "Deleted 12 digits of class 7b" in texts(at.success)
    assert len(cs.load_class(db, "7b")) == 0


# -- "Wrong? It was a ..." on Draw and Upload -----------------------------------------------

def test_flag_on_draw_saves_the_corrected_label(db, fake_canvas, gallery):
    fake_canvas.image = canvas_of(gallery.images[0])
    at = open_app(query={"class": "7b"})
    pills = at.get("button_group")
    flag = [p for p in pills if p.key and p.key.startswith("flag-draw-")]
    assert len(flag) == 1 and flag[0].label == "Wrong? It was a …"
    ok(flag[0].set_value(3).run())
    assert "Saved as a 3 for class 7b" in texts(at.success)
    ok(at.get("button_group")[[p.key for p in at.get("button_group")].index(flag[0].key)]
       .set_value(3).run())                               # picked again: still one row
    got = cs.load_class(db, "7b")
    assert got.labels.tolist() == [3] and got.sources == ["flag-draw"]
    assert set(got.answers[0]) == {"numpy", "lenet5"}
    assert got.images[0].max() == 255 and got.images[0].shape == (28, 28)


def test_flag_without_a_class_asks_for_one(db, fake_canvas, gallery):
    fake_canvas.image = canvas_of(gallery.images[0])
    at = open_app()
    at.text_input(key="flag-class-draw").input("8a").run()
    flag = next(p for p in at.get("button_group") if p.key.startswith("flag-draw-"))
    ok(flag.set_value(5).run())
    assert cs.load_class(db, "8a").labels.tolist() == [5]


def test_flag_on_upload_saves_the_corrected_label(db, gallery):
    at = open_app("app_pages/upload.py", query={"class": "7b"})
    png = h.png_bytes(h.paper_digit(gallery.images[0]))
    at.file_uploader(key="uploads").set_value([("digit.png", png, "image/png")]).run()
    ok(at)
    flag = next(p for p in at.get("button_group") if p.key.startswith("flag-upload-0-"))
    ok(flag.set_value(7).run())
    got = cs.load_class(db, "7b")
    assert got.labels.tolist() == [7] and got.sources == ["flag-upload"] and got.strokes == [None]


def test_flag_with_the_database_down_says_not_saved(db, fake_canvas, gallery):
    fake_canvas.image = canvas_of(gallery.images[0])
    url = f"postgresql+psycopg://postgres@127.0.0.1:{h.free_port()}/postgres"
    at = open_app(query={"class": "7b"}, secrets={"connections": {"classroom": {"url": url}}})
    assert at.metric                                      # Draw reads the digit regardless
    flag = next(p for p in at.get("button_group") if p.key.startswith("flag-draw-"))
    ok(flag.set_value(2).run())
    assert "Not saved:** this digit as a 2 (pick it again to retry)" in texts(at.error)


# -- Teach the models ------------------------------------------------------------------------

TEACH = "app_pages/teach.py"


def test_teach_needs_two_writers(db, gallery):
    fill(db, gallery, writers=("solo",), per=5)
    at = open_app(TEACH, query={"class": "7b"})
    assert "needs the class's PIN" in texts(at.info)
    unlock(at, key="teach-pin")
    assert "at least 2 writers" in texts(at.info)
    assert not at.button


def test_teach_trains_compares_and_becomes_the_class_model(monkeypatch, db, gallery):
    import time

    import app_helpers
    if app_helpers.mnist_path() is None:
        pytest.skip("Teach mixes in MNIST replay: no local MNIST ($MNIST_DATA)")
    monkeypatch.setenv("MNIST_DATA", str(app_helpers.mnist_path()))
    fill(db, gallery, writers=("ana", "ben", "cy", "dee"), per=10)
    at = unlock(open_app(TEACH, query={"class": "7b"}), key="teach-pin")
    assert "measure" in texts(at.markdown)
    at.slider(key="teach-epochs").set_value(1).run()
    ok(at.button(key="teach-go").click().run())
    deadline = time.monotonic() + 240
    while not at.session_state["teach_job"].finished and time.monotonic() < deadline:
        time.sleep(1)
    job = at.session_state["teach_job"]
    assert job.finished and job.status == "done", job.error
    ok(at.run())
    # Taught against shipped (training.yours_against_shipped, as on Train live).
    assert "Before and after: NumPy MLP" in [h.value for h in at.subheader]
    scores = {m.label: float(m.value.rstrip("%")) / 100 for m in at.metric}
    assert set(scores) == {"Held-out writers, taught", "Held-out writers, shipped",
                           "MNIST test (2,000), taught", "MNIST test (2,000), shipped"}
    assert all(0 <= v <= 1 for v in scores.values()), scores
    assert scores["MNIST test (2,000), taught"] > 0.8    # MNIST is not forgotten
    taught = next(m for m in at.metric if m.label == "Held-out writers, taught")
    assert taught.delta.endswith("points vs shipped")
    t = job.model.temperature                       # tempered like the shipped models
    assert t != 1.0 and any(f"tempered with T = {t:.2f}" in c.value for c in at.caption)
    ok(at.button(key="teach-use").click().run())
    at.switch_page("app_pages/class_dashboard.py").run()
    ok(at)
    assert "Class model" in {m.label for m in at.metric}


def test_a_database_url_and_pin_from_the_environment(monkeypatch, db, gallery, tmp_path):
    """deploy/compose.yaml passes the shared database and the PIN as environment variables."""
    other = tmp_path / "from-env.sqlite"
    monkeypatch.setenv(class_data.URL_ENV, class_engine.sqlite_url(other))
    monkeypatch.setenv(class_data.PIN_ENV, "2468")
    fill(db, gallery, writers=("ana",), per=2)           # the default file: not used now
    engine = class_engine.make_engine(class_engine.sqlite_url(other))
    class_schema.migrate(engine)
    open_classes(engine, ("7b",))
    fill(engine, gallery, writers=("env",), per=3)
    at = unlock(open_app(DASHBOARD, query={"class": "7b"}))
    assert at.subheader[0].value == "3 digits from 1 writer"
    assert class_data.teacher_pin() == "2468"


def test_a_database_file_deleted_while_learners_save_is_said_and_nothing_acknowledged(
        db, fake_canvas, gallery, tmp_path):
    """Issue #25: Collect said "Saved your 7" into a deleted SQLite file, and after a
    restart the class had none of them."""
    at = open_app(COLLECT, query={"class": "7b"})
    target = int(at.subheader[0].value.removeprefix("Draw a "))
    fake_canvas.image = canvas_of(gallery.images[int(np.flatnonzero(gallery.labels == target)[0])])
    ok(at.run())
    ok(at.button(key="collect-save").click().run())
    assert "Saved your" in texts(at.success)
    for name in ("classroom.sqlite", "classroom.sqlite-wal", "classroom.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)      # deleted while the app runs
    target = int(at.subheader[0].value.removeprefix("Draw a "))
    fake_canvas.image = canvas_of(gallery.images[int(np.flatnonzero(gallery.labels == target)[0])])
    ok(at.run())
    ok(at.button(key="collect-save").click().run())
    message = texts(at.error)
    assert "deleted or replaced while the app was running" in message
    assert f"Not saved:** your {target}; it is still on the canvas" in message
    assert not at.success and at.subheader[0].value == f"Draw a {target}"


# -- A reload, or another replica after this one stopped (issue #24, defect 3) ----------

def digit_for(gallery, target: int) -> np.ndarray:
    return canvas_of(gallery.images[int(np.flatnonzero(gallery.labels == target)[0])])


def test_a_new_session_keeps_the_nickname_writer_and_prompt(db, fake_canvas, gallery):
    """Defect 3: a page reconnected to another replica became a new learner: the nickname
    box still showed the name, digits went under a random id, the round restarted. The
    writer, the browser key and the round live in the address; a new session reads them."""
    at = open_app(COLLECT, query={"class": "7b"})
    at.text_input(key="collect-nickname").input("Sam").run()
    target = first = int(at.subheader[0].value.removeprefix("Draw a "))
    fake_canvas.image = digit_for(gallery, target)
    ok(at.run())
    ok(at.button(key="collect-save").click().run())
    assert "Saved your" in texts(at.success)
    fake_canvas.image = None
    address = dict(at.query_params)
    assert address["writer"] == ["Sam"] or address["writer"] == "Sam"
    prompt = at.subheader[0].value
    query = {k: (v[0] if isinstance(v, list) else v) for k, v in address.items()}

    again = open_app(COLLECT, query=query)            # a reload: a new session, same address
    assert again.subheader[0].value == prompt            # the same round, the same prompt
    assert again.text_input(key="collect-nickname").value == "Sam"
    last = address["saved"][0] if isinstance(address["saved"], list) else address["saved"]
    assert last == "0"                                   # prompt 0's digit is stored
    assert f"Connected again. Your {first} was saved" in texts(again.success)   # and told
    target = int(prompt.removeprefix("Draw a "))
    fake_canvas.image = digit_for(gallery, target)
    ok(again.run())
    ok(again.button(key="collect-save").click().run())
    assert "Saved your" in texts(again.success)
    assert cs.load_class(db, "7b").writers == ["Sam", "Sam"]


def test_a_save_that_committed_before_the_connection_dropped_is_said_and_not_repeated(
        db, fake_canvas, gallery):
    """The replica stored the digit and died before the page heard: the address still has
    the old round and the canvas its drawing. The new session says it was saved, moves on,
    and a Save pressed anyway stores nothing twice."""
    at = open_app(COLLECT, query={"class": "7b"})
    query = {k: (v[0] if isinstance(v, list) else v) for k, v in dict(at.query_params).items()}
    target = int(at.subheader[0].value.removeprefix("Draw a "))
    fake_canvas.image = digit_for(gallery, target)
    ok(at.run())
    ok(at.button(key="collect-save").click().run())      # stored: round 1 now
    assert len(cs.load_class(db, "7b")) == 1

    back = open_app(COLLECT, query=query)                # round 0 still in the address
    assert f"Your {target} was saved before the connection dropped" in texts(back.success)
    assert back.subheader[0].value != f"Draw a {target}" or query["round"] != "0"
    assert len(cs.load_class(db, "7b")) == 1

    # Had the page not moved on, Save again stores it once (the same id).
    fake_canvas.image = digit_for(gallery, target)
    third = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=TIMEOUT)
    for k, v in query.items():
        third.query_params[k] = v
    third.session_state["collect_round"] = 0             # as if not yet told
    third.run()
    third.switch_page(COLLECT).run()
    ok(third.button(key="collect-save").click().run())
    assert "already saved" in texts(third.success)
    assert len(cs.load_class(db, "7b")) == 1


def test_a_drawing_not_yet_saved_is_said_so_in_a_new_session(db, fake_canvas, gallery):
    at = open_app(COLLECT, query={"class": "7b"})
    query = {k: (v[0] if isinstance(v, list) else v) for k, v in dict(at.query_params).items()}
    target = int(at.subheader[0].value.removeprefix("Draw a "))
    fake_canvas.image = digit_for(gallery, target)
    back = open_app(COLLECT, query=query)                # the drawing came back, unsaved
    assert f"Your {target} is **not saved** yet" in texts(back.warning) or \
        f"Your {target} is not saved yet" in texts(back.warning)
    ok(back.button(key="collect-save").click().run())
    assert "Saved your" in texts(back.success) and len(cs.load_class(db, "7b")) == 1
