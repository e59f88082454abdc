"""A class at once: N browser sessions drawing on one server; write benchmarks/LOAD.md.

Each session is its own page in one headless Chromium (its own Streamlit session), opens
Draw, draws one warm-up stroke (not counted: it loads the chart code), then ``--digits``
single-stroke digits, each on a cleared canvas; the counted strokes of all sessions start
together. Per run: strokes answered and errors (an exception shown, or no answer within
``--timeout`` s); mouse-up to new bars (median, p90, max; includes the canvas's 200 ms
debounce); server CPU per digit, server RSS before and after, and the CPU of everything
else (the Chromium clients share this machine).

``--photos N`` adds ``--photo-sessions`` learners on Upload uploading 12-megapixel JPEGs
(from ``phone_photos.synthesise``), each replacing the one before, in two scenarios
(``--photo-scenarios``): ``bursts`` (all choose a photo at once, the next burst once all
are answered) and ``back-to-back`` (each uploads again as soon as its answer shows).
Reported: choosing the file to the answer shown, errors, server CPU per photo, and server
RSS idle before, after the photos and after the sessions closed (goal: within 100 MB of idle).

    .venv/bin/python benchmarks/load_bench.py --sessions 1 10 30 --digits 5 --photos 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import harness as h
from browser_bench import (BARS, BARS_NOW, MARK_OLD_CANVASES, NEW_CANVAS, NEW_CANVAS_IN_PLACE,
                           PLOT_SIGNATURE, SHAPES, WATCH_SENDS)

WARM_UP_TIMEOUTS = 5   # the warm-up stroke may take this many --timeout periods
# Either kind of bars (HTML since issue 21, plotly before), as browser_bench.py reads them.
BARS_CHANGED = f"""(previous) => {{
    const now = {BARS_NOW};
    return now !== null && now !== previous;
}}"""
STROKE_END = """() => new Promise(resolve => document.addEventListener(
    'pointerup', () => resolve(performance.now()), {capture: true, once: true}))"""


async def session(browser, url: str, digits: int, timeout_s: float, start: asyncio.Event,
                  ready: list, index: int) -> dict:
    """One learner: open Draw, draw ``digits`` strokes, time each answer."""
    from playwright.async_api import expect

    out = {"latencies": [], "errors": []}
    context = await browser.new_context(viewport={"width": 1100, "height": 1100})
    await context.add_init_script(WATCH_SENDS)  # to tell a stroke never sent from one unanswered
    page = await context.new_page()
    try:
        try:
            await page.goto(url, timeout=timeout_s * 1000)
            await expect(page.locator("canvas.upper-canvas")).to_be_visible(
                timeout=timeout_s * 1000)
            # One stroke answered before the clock starts, not counted: the first answer
            # loads the page's chart code (plotly's chunk is 4.7 MB of JavaScript), which
            # 30 headless pages parsing at once on this machine's 2 cores took over a
            # minute to do, while the server's part was done in seconds.
            before = await page.evaluate(PLOT_SIGNATURE)
            await h.draw_stroke_async(page, page.locator("canvas.upper-canvas"),
                                      [(0.5, 0.15), (0.5, 0.85)], steps=12)
            await page.wait_for_function(BARS_CHANGED, arg=before,
                                         timeout=WARM_UP_TIMEOUTS * timeout_s * 1000)
        except Exception as exc:  # noqa: BLE001 - a page that never loads is an error
            out["errors"] += [f"page did not load or answer a first stroke: "
                              f"{type(exc).__name__}"] * digits
            start_failed = True
        else:
            start_failed = False
        ready.append(index)
        await start.wait()
        if start_failed:
            return out
        home = await page.locator("canvas.upper-canvas").bounding_box()
        for i in range(digits):
            _, points = SHAPES[(index + i) % len(SHAPES)]
            step = "clearing"
            try:
                # The warm-up stroke is on the canvas: every digit starts with Clear.
                await page.locator("canvas.upper-canvas").evaluate_all(MARK_OLD_CANVASES)
                await page.get_by_role("button", name="Clear").click()
                await expect(page.locator(BARS)).to_have_count(
                    0, timeout=timeout_s * 1000)
                canvas = page.locator(NEW_CANVAS)
                await expect(canvas).to_have_count(1, timeout=timeout_s * 1000)
                await page.wait_for_function(NEW_CANVAS_IN_PLACE,
                                             arg=[await canvas.element_handle(), home["y"]],
                                             polling="raf", timeout=timeout_s * 1000)
                step = "drawing"
                before = await page.evaluate(PLOT_SIGNATURE)
                ended = asyncio.ensure_future(page.evaluate(STROKE_END))
                await h.draw_stroke_async(page, canvas, points, steps=12)
                stroke_end = await ended
                step = "waiting for the answer"
                await page.wait_for_function(BARS_CHANGED, arg=before, timeout=timeout_s * 1000)
                answered = await page.evaluate("performance.now()")
                if await page.get_by_test_id("stException").count():
                    out["errors"].append("exception shown on the page")
                else:
                    out["latencies"].append(answered - stroke_end)
            except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                if step == "waiting for the answer":  # did the canvas send the drawing?
                    sent = await page.evaluate(
                        "(t) => window.__sends.some(([at, size]) => at >= t && size > 1000)",
                        stroke_end)
                    prompt = await page.get_by_text("Draw a digit from 0 to 9").count()
                    step += (f" (the drawing {'was' if sent else 'was never'} sent; the page "
                             f"{'shows the empty-canvas prompt' if prompt else 'shows no prompt'}"
                             f", {await page.locator(BARS).count()} bar charts)")
                out["errors"].append(f"{step}: {type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0][:100]}")
    finally:
        await context.close()
    return out


async def run(url: str, server_pid: int, sessions: int, digits: int, timeout_s: float) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await h.launch_chromium(p)
        start, ready = asyncio.Event(), []
        tasks = [asyncio.ensure_future(session(browser, url, digits, timeout_s, start, ready, i))
                 for i in range(sessions)]
        await asyncio.sleep(1.0)
        # Every page has loaded and answered a first stroke (or failed) before the clock
        # starts: this measures drawing.
        for _ in range(int(WARM_UP_TIMEOUTS * timeout_s * 10)):
            if len(ready) >= sessions:
                break
            await asyncio.sleep(0.1)
        rss_before, clock = h.rss_mb(server_pid), h.Clock(server_pid)
        print(f"{sessions} sessions ready: the clock starts", flush=True)
        start.set()
        results = await asyncio.gather(*tasks)
        used = clock.read()
        await browser.close()
    latencies = [ms for r in results for ms in r["latencies"]]
    return {"sessions": sessions, "digits": sessions * digits, "answered": len(latencies),
            "errors": [e for r in results for e in r["errors"]], **used, **h.spread(latencies),
            "cpu_per_digit_ms": 1000 * used["server_cpu_s"] / max(1, len(latencies)),
            "rss_before_mb": rss_before, "rss_after_mb": h.rss_mb(server_pid)}


ANSWER = (".js-plotly-plot .main-svg, [data-testid=stHtml] .mb, "
          "[data-testid=stAlertContentWarning], [data-testid=stAlertContentError]")
# Resolves with performance.now() at the first DOM change after which an answer is shown
# and nothing is stale: a MutationObserver, so the page is not polled (polling cost the
# clients' CPU and put up to a polling interval on every time).
ANSWERED = """([selector, timeoutMs]) => new Promise((resolve, reject) => {
    const done = () => document.querySelector(selector) &&
        !document.querySelector('[data-stale="true"]');
    if (done()) { resolve(performance.now()); return; }
    const observer = new MutationObserver(() => {
        if (done()) { observer.disconnect(); clearTimeout(timer); resolve(performance.now()); }
    });
    const timer = setTimeout(() => { observer.disconnect(); reject(new Error('no answer')); },
                             timeoutMs);
    observer.observe(document.body, {childList: true, subtree: true, attributes: true,
                                     attributeFilter: ['data-stale']});
})"""


async def remove_photo(page, timeout_s: float, out: dict) -> bool:
    """Back to the prompt: the photo before removed (nothing if there was none); False,
    with the error in ``out["errors"]``, if that failed."""
    from playwright.async_api import expect

    remove = page.get_by_role("button", name="Remove ")
    try:
        if await remove.count():
            await remove.first.click()
            await expect(page.get_by_text("Choose one or more images")).to_be_visible(
                timeout=timeout_s * 1000)
        return True
    except Exception as exc:  # noqa: BLE001 - counted, the run goes on
        out["errors"].append(f"removing the photo before: {type(exc).__name__}")
        return False


async def upload_photo(page, photo: Path, timeout_s: float, out: dict) -> None:
    """Choose ``photo`` and wait for the answer: bars, "no digit" or an error shown. Adds the
    time from choosing to the answer to ``out["latencies"]``, or what went wrong to
    ``out["errors"]``."""
    step = "uploading"
    try:
        t0 = await page.evaluate("performance.now()")
        await page.locator("input[type=file]").set_input_files(str(photo))
        step = "waiting for the answer"
        answered = await page.evaluate(ANSWERED, [ANSWER, timeout_s * 1000])
        if await page.get_by_test_id("stException").count():
            out["errors"].append("exception shown on the page")
        elif await page.get_by_test_id("stAlertContentError").count():
            out["errors"].append("error shown: " + (await page.get_by_test_id(
                "stAlertContentError").first.inner_text())[:100])
        elif not await page.get_by_text(photo.name, exact=True).count():
            out["errors"].append("answer shown without the photo's name")
        else:
            out["latencies"].append(answered - t0)
    except Exception as exc:  # noqa: BLE001 - counted, the run goes on
        out["errors"].append(f"{step} ({photo.name}): {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:120]}")


async def learner_tab(browser, url: str, photo: Path, timeout_s: float) -> dict:
    """A learner's tab on Upload after one photo, not counted: the tab has loaded the
    chart code, as a learner's has after a first photo. ``{"context", "page", "errors"}``;
    the page is None if it never loaded."""
    from playwright.async_api import expect

    tab: dict = {"context": await browser.new_context(viewport={"width": 1100, "height": 1100}),
                 "page": None, "errors": []}
    try:
        page = await tab["context"].new_page()
        await page.goto(f"{url}/Upload", timeout=timeout_s * 1000)
        await expect(page.get_by_text("Choose one or more images")).to_be_visible(
            timeout=timeout_s * 1000)
        tab["page"] = page
    except Exception as exc:  # noqa: BLE001 - a page that never loads is an error
        tab["errors"].append(f"page did not load: {type(exc).__name__}")
        return tab
    warm: dict = {"latencies": [], "errors": []}
    await upload_photo(tab["page"], photo, timeout_s * WARM_UP_TIMEOUTS, warm)
    tab["errors"] += [f"warm-up photo: {e}" for e in warm["errors"]]
    return tab


async def photo_learner(tab: dict, photos: list[Path], timeout_s: float,
                        queue: asyncio.Queue | None = None, rounds: int = 0,
                        barrier: asyncio.Barrier | None = None, index: int = 0) -> dict:
    """One learner. Back to back (``queue``): takes photo numbers off ``queue``, uploading
    each the moment the one before is answered. Bursts (``barrier``, ``rounds`` times):
    removes the photo before, waits for the others, all choose at the same moment, and
    the next round starts when every learner has its answer (a learner whose page did not
    load still keeps the rounds' time)."""
    out: dict = {"latencies": [], "errors": []}
    page, r = tab["page"], 0
    while (r < rounds) if barrier is not None else (page is not None and not queue.empty()):
        i = r * barrier.parties + index if barrier else queue.get_nowait()
        removed = page is not None and await remove_photo(page, timeout_s, out)
        if barrier:
            await barrier.wait()
        if page is not None and (removed or barrier is not None):
            await upload_photo(page, photos[i % len(photos)], timeout_s, out)
        if barrier:
            await barrier.wait()
        r += 1
    return out


async def run_photos(url: str, server_pid: int, learners: int, n: int, photos: list[Path],
                     timeout_s: float, settle_s: float, bursts: bool) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await h.launch_chromium(p)
        # Every learner's tab reads one photo first, not counted (one tab at a time, so no
        # warm-up waits on another): its chart code loads, the server's stages warm up.
        # Not the photo it uploads next: choosing the file a file input already holds
        # fires no change event, so nothing would be uploaded.
        tabs = [await learner_tab(browser, url, photos[(i + learners) % len(photos)],
                                  timeout_s) for i in range(learners)]
        rss_before, clock = h.rss_mb(server_pid), h.Clock(server_pid)
        if bursts:
            barrier = asyncio.Barrier(learners)
            rounds = -(-n // learners)
            results = await asyncio.gather(*[
                photo_learner(tab, photos, timeout_s, rounds=rounds, barrier=barrier, index=i)
                for i, tab in enumerate(tabs)])
            n = rounds * learners
        else:
            queue: asyncio.Queue = asyncio.Queue()
            for i in range(n):
                queue.put_nowait(i)
            results = await asyncio.gather(*[photo_learner(tab, photos, timeout_s, queue)
                                             for tab in tabs])
        used, rss_after = clock.read(), h.rss_mb(server_pid)
        await browser.close()
    await asyncio.sleep(settle_s)  # sessions closed: Streamlit drops them after a moment
    latencies = [ms for r in results for ms in r["latencies"]]
    return {"learners": learners, "photos": n, "answered": len(latencies), "bursts": bursts,
            "errors": [e for x in tabs + results for e in x["errors"]], **used,
            **h.spread(latencies),
            "cpu_per_photo_ms": 1000 * used["server_cpu_s"] / max(1, len(latencies)),
            "rss_before_mb": rss_before, "rss_after_mb": rss_after,
            "rss_settled_mb": h.rss_mb(server_pid), "settle_s": settle_s}


def photo_lines(rows: list[dict], sizes: list[int]) -> list[str]:
    learners = rows[0]["learners"]
    lines = [
        "## Phone photos, several learners at once", "",
        f"{learners} learners, each with Upload open, uploading 12-megapixel JPEGs "
        f"({min(sizes) / 1e6:.1f}-{max(sizes) / 1e6:.1f} MB, 4000x3000, every other one "
        "stored sideways with an EXIF orientation), each photo replacing the one before. "
        "Time: from choosing the file to the answer shown, the upload over loopback "
        "included.", "",
        f"* **bursts**: a class told \"upload your photo now\": all {learners} choose a photo "
        "at the same moment; the next burst starts once every answer is shown (the goal's "
        f"\"{learners} at once\").",
        f"* **back to back**: each of the {learners} uploads its next photo the moment its "
        "answer shows, with no pause, until all the photos are read: a harder, sustained "
        "load than a class gives.", "",
        *h.table(["scenario", "photos", "answered", "errors",
                  "choose to answer: median / p90 / max ms", "server CPU per photo",
                  "server CPU s", "clients' CPU s (rest of the machine)", "server RSS: idle "
                  f"before / after the photos / sessions closed + {rows[0]['settle_s']:.0f} s, MB",
                  "wall s"],
                 [("bursts" if r["bursts"] else "back to back", r["photos"], r["answered"],
                   len(r["errors"]), f"{r['median_ms']:.0f} / {r['p90_ms']:.0f} / "
                   f"{r['max_ms']:.0f}", f"{r['cpu_per_photo_ms']:.0f} ms",
                   f"{r['server_cpu_s']:.1f}", f"{r['others_cpu_s']:.1f}",
                   f"{r['rss_before_mb']:.0f} / {r['rss_after_mb']:.0f} / "
                   f"{r['rss_settled_mb']:.0f}", f"{r['wall_s']:.0f}") for r in rows])]
    return lines + [""]


def write(rows: list[dict], out: Path, command: str, rss_idle: float,
          photo_rows: list[dict], sizes: list[int] | None = None) -> None:
    lines = [
        h.measured(command, "Streamlit", "Playwright", "chromium")
        + " Server and headless Chromium clients share this machine.", "",
        f"Server RSS at start, before any page loaded the models: {rss_idle:.0f} MB.", "",
        *h.table(["sessions", "digits drawn", "answered", "errors",
                  "stroke end to bars: median / p90 / max ms", "server CPU per answered digit",
                  "server CPU s", "clients' CPU s (rest of the machine)",
                  "server RSS before / after MB", "wall s"],
                 [(r["sessions"], r["digits"], r["answered"], len(r["errors"]),
                   f"{r['median_ms']:.0f} / {r['p90_ms']:.0f} / {r['max_ms']:.0f}",
                   f"{r['cpu_per_digit_ms']:.0f} ms", f"{r['server_cpu_s']:.1f}",
                   f"{r['others_cpu_s']:.1f}",
                   f"{r['rss_before_mb']:.0f} / {r['rss_after_mb']:.0f}", f"{r['wall_s']:.0f}")
                  for r in rows]),
    ]
    if photo_rows:
        lines += [""] + photo_lines(photo_rows, sizes or [0])
    errors = sorted({e for r in rows + photo_rows for e in r["errors"]})
    if errors:
        lines += ["", "Errors seen:", ""] + [f"- {e}" for e in errors]
    lines += ["", "How much of the latency is the clients: the machine has "
              f"{os.cpu_count()} cores; the column 'clients' CPU' is what the browsers (and "
              "anything else running) used while the server worked. Where server and clients "
              "together need more CPU seconds than cores x wall seconds, the answers wait for "
              "a core, so a server with its own cores answers faster than these figures."]
    h.write_report(out, "Load benchmark: a class drawing at once", lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, nargs="*", default=[1, 10, 30])
    parser.add_argument("--digits", type=int, default=5, help="strokes per session")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per answer")
    parser.add_argument("--artifacts", default=os.environ.get("MNIST_STUDIO_ARTIFACTS"))
    parser.add_argument("--photos", type=int, default=0,
                        help="phone photos to upload after the drawing runs (0: none)")
    parser.add_argument("--photo-sessions", type=int, default=5, help="learners uploading at once")
    parser.add_argument("--photo-scenarios", nargs="+", choices=["bursts", "back-to-back"],
                        default=["bursts", "back-to-back"], help="how the learners upload")
    parser.add_argument("--settle", type=float, default=15.0,
                        help="seconds after the photo sessions close before RSS is read")
    parser.add_argument("--out", default=str(h.REPO / "benchmarks" / "LOAD.md"))
    args = parser.parse_args()
    photos: list[Path] = []
    if args.photos:
        from phone_photos import synthesise
        folder = Path(tempfile.gettempdir()) / "mnist-studio-phone-photos"
        folder.mkdir(exist_ok=True)
        photos = sorted(folder.glob("photo-*.jpg")) or [p for p, _ in synthesise(folder)]
    proc, url = h.start_server(args.artifacts)
    try:
        rss_idle = h.rss_mb(proc.pid)
        rows = []
        for n in args.sessions:
            rows.append(asyncio.run(run(url, proc.pid, n, args.digits, args.timeout)))
            r = rows[-1]
            print(f"{n} sessions: {r['answered']}/{r['digits']} answered, "
                  f"{len(r['errors'])} errors, median {r['median_ms']:.0f} ms, "
                  f"server CPU {r['cpu_per_digit_ms']:.0f} ms/digit", file=sys.stderr)
        photo_rows = []
        for scenario in args.photo_scenarios if args.photos else []:
            r = asyncio.run(run_photos(url, proc.pid, args.photo_sessions, args.photos, photos,
                                       args.timeout, args.settle, scenario == "bursts"))
            photo_rows.append(r)
            print(f"photos, {scenario}: {r['answered']}/{r['photos']} answered, "
                  f"{len(r['errors'])} errors, median {r['median_ms']:.0f} ms, p90 "
                  f"{r['p90_ms']:.0f} ms, RSS {r['rss_before_mb']:.0f} -> "
                  f"{r['rss_after_mb']:.0f} -> {r['rss_settled_mb']:.0f} MB", file=sys.stderr)
    finally:
        h.stop_server(proc)
    write(rows, Path(args.out), h.command("python"), rss_idle, photo_rows,
          [p.stat().st_size for p in photos])
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
