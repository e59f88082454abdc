"""What one stroke costs the server on the Draw page: the page run in AppTest with a stand-in
canvas that returns a new drawing each time, then ``--strokes`` reruns timed and profiled
with cProfile (benchmarks/DRAW_RERUN.md). Each rerun is what the browser asks for after a
stroke: the drawing board's fragment when the page has one, else the whole page.

    .venv/bin/python benchmarks/draw_profile.py --strokes 40 --top 25
    .venv/bin/python benchmarks/draw_profile.py --strokes 40 --same   # the brush, a button
    .venv/bin/python benchmarks/draw_profile.py --page stress --strokes 40   # a slider move
    .venv/bin/python benchmarks/draw_profile.py --page attack --strokes 40
    .venv/bin/python benchmarks/draw_profile.py --page upload --strokes 20
    .venv/bin/python benchmarks/draw_profile.py --page collect --strokes 40

With ``--page`` (stress, attack) the page is opened on its first test digit and each rerun
moves one slider (Stress test's rotation, Adversarial digits' strength) to a new value, as
the browser asks for it: the slider's fragment when the page has one, else the whole page.
With ``--page upload`` a 12-megapixel JPEG of a digit (4000 x 3000, as a phone takes it) is
uploaded once and each rerun is what a click on that page asks for (a "Wrong? It was a…"
pill, the expander): the whole page again, the same file still chosen. With ``--page
collect`` a learner of an open class (a SQLite file in a temporary folder) draws on Collect:
each rerun is a stroke, as the browser asks for it (the whole page: its canvas is not in a
fragment).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
import types
from functools import partial

import cv2
import numpy as np

import harness as h

SHAPES = [  # single-stroke digits in canvas pixels (280 x 280)
    [(70, 56), (210, 56), (118, 238)],
    [(140, 42), (140, 238)],
    [(78, 84), (140, 42), (202, 84), (84, 238), (210, 238)],
    [(168, 238), (168, 42), (70, 168), (224, 168)],
    [(84, 56), (196, 56), (126, 140), (202, 196), (140, 246), (78, 224)],
]


def drawing(i: int) -> np.ndarray:
    """The i-th drawing: a shape, nudged a few pixels per round so no two are the same."""
    img = np.zeros((280, 280, 4), np.uint8)
    shift = (i // len(SHAPES)) % 7 - 3
    pts = np.asarray(SHAPES[i % len(SHAPES)], np.int32).reshape(-1, 1, 2) + shift
    cv2.polylines(img, [pts], False, (255, 255, 255, 255), 22, cv2.LINE_AA)
    return img


# page -> (file, slider key, values a move steps through)
SLIDER_PAGES = {
    "stress": ("app_pages/stress_test.py", "stress_rotate", [-30, -15, 0, 15, 30, 45]),
    "attack": ("app_pages/attack.py", "attack_strength", [0.05, 0.1, 0.15, 0.2, 0.25]),
}


def phone_photo() -> bytes:
    """A 4000 x 3000 JPEG of a dark digit on light, slightly uneven paper."""
    rng = np.random.default_rng(0)
    paper = np.full((3000, 4000), 228, np.uint8)
    paper += rng.integers(0, 12, paper.shape, dtype=np.uint8)
    pts = (np.asarray(SHAPES[0], np.int32) * 7 + (1000, 600)).reshape(-1, 1, 2)
    cv2.polylines(paper, [pts], False, 40, 90, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", paper, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


CLASS = "7b"


def open_class() -> None:
    """A fresh class database (SQLite, in a temporary folder) with class CLASS open, named
    to the app by its environment variable."""
    import tempfile

    from mnist_core.classroom import class_access, class_engine, class_schema
    from ui import class_data

    path = os.path.join(tempfile.mkdtemp(prefix="collect-profile-"), "classroom.sqlite")
    os.environ[class_data.DB_ENV] = path
    engine = class_engine.make_engine(class_engine.sqlite_url(path))
    class_schema.migrate(engine)
    class_access.create_class(engine, CLASS, "profile-pin",
                              class_access.AccessConfig(scrypt_n=2**4))
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strokes", type=int, default=40)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--artifacts", default=str(h.REPO / "artifacts"))
    parser.add_argument("--profile-out", help="write the pstats dump here")
    parser.add_argument("--same", action="store_true",
                        help="rerun with the drawing unchanged (the brush moved, a button)")
    parser.add_argument("--page", choices=sorted([*SLIDER_PAGES, "upload", "collect"]),
                        help="profile a slider move on this page instead of a stroke")
    args = parser.parse_args()
    os.environ["MNIST_STUDIO_ARTIFACTS"] = args.artifacts
    from streamlit.testing.v1 import AppTest
    from streamlit.testing.v1 import local_script_runner

    state = {"i": 0}

    def st_canvas(**kwargs):
        image = drawing(state["i"])
        return types.SimpleNamespace(image_data=image, json_data=None)
    sys.modules["streamlit_drawable_canvas"] = types.SimpleNamespace(st_canvas=st_canvas)

    if args.page == "collect":
        open_class()
    at = AppTest.from_file(str(h.REPO / "app.py"), default_timeout=300).run()
    assert not at.exception, [e.message for e in at.exception]
    if args.page == "collect":
        at.switch_page("app_pages/collect.py").run()
        at.text_input(key="collect-class").input(CLASS).run()
        at.text_input(key="collect-nickname").input("sam").run()
        assert not at.exception and at.subheader[0].value.startswith("Draw a ")

        def move(i: int) -> None:
            state["i"] = i
    elif args.page == "upload":
        at.switch_page("app_pages/upload.py").run()
        at.file_uploader(key="uploads").set_value(("photo.jpg", phone_photo(), "image/jpeg"))
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        assert at.metric or at.markdown, "the photo was not read"

        def move(i: int) -> None:  # a click elsewhere: the same file stays chosen
            pass
    elif args.page:
        at.switch_page(SLIDER_PAGES[args.page][0]).run()
        assert not at.exception, [e.message for e in at.exception]
        slider_key, values = SLIDER_PAGES[args.page][1:]

        def move(i: int) -> None:  # the slider to its i-th value: a new one each rerun
            at.slider(key=slider_key).set_value(values[i % len(values)])
    else:
        def move(i: int) -> None:
            state["i"] = i
    # Collect's one fragment is its counts' timer, not the board: a stroke reruns the page.
    fragments = [] if args.page == "collect" else list(at._fragment_storage._fragments)
    if fragments:  # a stroke reruns the drawing board only, as the browser asks for it
        local_script_runner.RerunData = partial(local_script_runner.RerunData,
                                                fragment_id_queue=fragments[:1])
    for i in range(3):  # warm up
        move(i + 1)
        at.run()
    # The script runs in the script runner's thread; cProfile profiles the thread that
    # enables it, so the profile is switched on inside that thread, around the script.
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner
    profile, run_script = cProfile.Profile(), ScriptRunner._run_script
    script_ms = []

    def profiled(self, *a, **k):
        t0 = time.perf_counter()
        profile.enable()
        try:
            return run_script(self, *a, **k)
        finally:
            profile.disable()
            script_ms.append(1000 * (time.perf_counter() - t0))
    ScriptRunner._run_script = profiled
    times = []
    for i in range(args.strokes):
        move(100 if args.same else 100 + i)
        t0 = time.perf_counter()
        at.run()
        times.append(1000 * (time.perf_counter() - t0))
        assert not at.exception, [e.message for e in at.exception]
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(args.top)
    if args.profile_out:
        stats.dump_stats(args.profile_out)
    print(out.getvalue())
    what = ("reruns of one drawing" if args.same else
            "strokes on Collect" if args.page == "collect" else
            "reruns with one photo uploaded" if args.page == "upload" else
            f"moves of {args.page}'s slider" if args.page else "strokes")
    print(f"commit {h.git_commit()}; {'fragment' if fragments else 'whole page'} reruns over "
          f"{len(times)} {what}, cProfile on: the script median "
          f"{statistics.median(script_ms):.1f} ms (p90 {h.spread(script_ms)['p90_ms']:.1f}); "
          f"AppTest's whole run median {statistics.median(times):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
