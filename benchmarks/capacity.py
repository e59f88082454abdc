"""Numbers for the capacity plan (benchmarks/CAPACITY.md): the rehearsal's stack
(deploy/rehearsal.py: PostgreSQL, replicas started as the Dockerfile starts them, nginx),
learners in headless Chromium collecting digits through the proxy, and PostgreSQL's saves
per second from many writers at once.

    .venv/bin/python benchmarks/capacity.py --learners 6 --digits 5 --write benchmarks/CAPACITY.json

Measured per replica: its Streamlit server's CPU seconds (``/proc/PID/stat``, user +
system) over the collecting, divided by the digits it saved (each digit is its strokes'
reruns, the Save and the rerun after it: what a learner costs on Collect), and its
resident memory (``VmRSS``) idle after start, after the learners and after every page was
visited once (deploy/smoke.py against it directly). PostgreSQL: ``writers`` threads, each
with its own engine (a replica each), save ``per_writer`` digits through
``class_store.save_digit`` as fast as they can; saves per second = all of them / wall.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402

from app_helpers import vm_rss_mb as rss_mb  # noqa: E402
from deploy.rehearsal import Stack  # noqa: E402
from mnist_core.classroom import class_access, class_engine, class_schema, class_store as cs  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK     # utime + stime


def collect(stack: Stack, learners: int, digits: int) -> dict:
    from playwright.sync_api import sync_playwright

    import app_helpers as h
    from test_deploy_rehearsal import SCHOOL_HOST, Learner
    pids = {i: stack.server_pid(i) for i in stack.replicas}
    saved_on = {i: 0 for i in stack.replicas}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=h.chromium_path(), args=[
            *h.CHROMIUM_ARGS, f"--host-resolver-rules=MAP {SCHOOL_HOST} 127.0.0.1"])
        people = [Learner(browser, stack, f"cap{k}").open() for k in range(learners)]
        for ln in people:
            ln.nickname()
        loaded = {i: cpu_s(p) for i, p in pids.items()}    # the pages open: from here on,
        t0 = time.monotonic()                               # only drawing and saving
        for _ in range(digits):          # round-robin: all learners' sessions stay open
            for ln in people:
                ln.draw_and_save()
                saved_on[int(ln.replica)] += 1
        wall = time.monotonic() - t0
        used = {i: cpu_s(p) - loaded[i] for i, p in pids.items()}
        for ln in people:
            ln.close()
        browser.close()
    return {"learners": learners, "digits_each": digits, "wall_s": round(wall, 1),
            "per_replica": {str(i): {"digits": saved_on[i], "cpu_s": round(used[i], 2),
                                     "cpu_ms_per_digit": round(1000 * used[i] / saved_on[i], 1)
                                     if saved_on[i] else None,
                                     "rss_mb": round(rss_mb(pids[i]))}
                            for i in pids}}


def pg_saves(url: str, writers: int, per_writer: int) -> dict:
    engine = class_engine.make_engine(url)
    class_schema.migrate(engine)
    code = class_access.create_class(engine, class_access.new_class_code("cap"), "cap-pin-1")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    strokes = json.dumps({"objects": [{"path": [[0, 1, 2]] * 200}]})   # ~3 kB like a drawing
    barrier = threading.Barrier(writers)
    errors = []

    def work(w: int):
        eng = class_engine.make_engine(url)
        try:
            barrier.wait()
            for k in range(per_writer):
                cs.save_digit(eng, cs.Digit(str(uuid.uuid4()), code, f"w{w}", k % 10,
                                            "collect", image, {"cnn": k % 10}, strokes))
        except Exception as exc:  # noqa: BLE001 - counted, reported
            errors.append(repr(exc))
        finally:
            eng.dispose()
    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    t0 = time.monotonic()
    [t.start() for t in threads]
    [t.join(300) for t in threads]
    wall = time.monotonic() - t0
    stored = len(cs.load_class(engine, code))
    engine.dispose()
    return {"writers": writers, "saves": writers * per_writer, "stored": stored,
            "errors": len(errors), "wall_s": round(wall, 2),
            "saves_per_s": round(stored / wall, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=6)
    parser.add_argument("--digits", type=int, default=5)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--per-writer", type=int, default=50)
    parser.add_argument("--write")
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="capacity-")))
    out = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores shared with other work",
           "command": "python benchmarks/capacity.py " + " ".join(sys.argv[1:])}
    try:
        stack.start()
        engine = stack.engine()
        class_schema.migrate(engine)
        stack.class_code = class_access.create_class(engine, class_access.new_class_code("cap"),
                                                     "cap-pin-1")
        engine.dispose()
        time.sleep(3)
        out["rss_idle_mb"] = {str(i): round(rss_mb(stack.server_pid(i))) for i in stack.replicas}
        out["collect"] = collect(stack, args.learners, args.digits)
        smoke = subprocess.run([sys.executable, str(REPO / "deploy" / "smoke.py"), "--url",
                                stack.url(1), "--no-collect"], capture_output=True, text=True,
                               timeout=600)
        out["smoke_rc"] = smoke.returncode
        out["rss_after_every_page_mb"] = round(rss_mb(stack.server_pid(1)))
        out["postgresql"] = pg_saves(stack.db_url(), args.writers, args.per_writer)
        out["load_average_end"] = os.getloadavg()
    finally:
        stack.stop()
    text = json.dumps(out, indent=1)
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
