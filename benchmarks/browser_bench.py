"""The app as a user meets it, in headless Chromium; writes benchmarks/BROWSER.md: cold
start (``streamlit run`` to Draw usable) and a warm reload, mouse-up to new probability
bars over ``--strokes`` digits on a cleared canvas (with the server time the page's caption
gives), and the server's RSS. Artifacts: ``--artifacts``, else ``$MNIST_STUDIO_ARTIFACTS``,
else ``artifacts/`` when it has a manifest, else /tmp/art.

    .venv/bin/python benchmarks/browser_bench.py --strokes 24
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

import harness as h

REPO = h.REPO

# Single-stroke digits, as fractions of the canvas: (name, points).
SHAPES = [
    ("7", h.SEVEN),
    ("1", [(0.5, 0.15), (0.5, 0.85)]),
    ("2", [(0.28, 0.3), (0.5, 0.15), (0.72, 0.3), (0.3, 0.85), (0.75, 0.85)]),
    ("4", [(0.6, 0.85), (0.6, 0.15), (0.25, 0.6), (0.8, 0.6)]),
    ("L", [(0.35, 0.15), (0.35, 0.85), (0.75, 0.85)]),
    ("3", [(0.3, 0.2), (0.7, 0.2), (0.45, 0.5), (0.72, 0.7), (0.5, 0.88), (0.28, 0.8)]),
]

# The bars the page shows, whichever kind: HTML bars (ui.charts.probability_bars, since
# issue 21) or the plotly figure before them, so one bench measures either commit.
BARS = ".js-plotly-plot, [data-testid=stHtml] .mb"
BARS_NOW = """(() => {
    const html = document.querySelector('[data-testid=stHtml] .mb');
    if (html) return html.dataset.bars;
    const el = document.querySelector('.js-plotly-plot');
    if (!el || !el.data || !el.querySelector('.main-svg')) return null;
    return JSON.stringify(el.data.map(d => d.y));
})()"""
PLOT_CHANGED = f"""(previous) => {{
    const now = {BARS_NOW};
    return now !== null && now !== previous ? performance.now() : false;
}}"""

# The whole page updated: no element left stale and every image (the 28x28 view, the
# stages, the views) loaded.
SETTLED = """() => document.querySelector('[data-stale="true"]')
    || !Array.from(document.images).every(i => i.complete) ? false : performance.now()"""

# Clear mounts a new canvas (a new key) while the old one is still on the page for a
# moment, below the new one's place; a stroke drawn then lands on the old one and is lost.
# Mark the canvases before Clear, then wait for the one new canvas, back at its place.
MARK_OLD_CANVASES = "els => els.forEach(e => { e.dataset.old = '1'; })"
NEW_CANVAS = "canvas.upper-canvas:not([data-old])"
NEW_CANVAS_IN_PLACE = (
    "([el, y]) => el.isConnected && Math.abs(el.getBoundingClientRect().y - y) < 1"
    " && !document.querySelector('[data-stale=\"true\"]')")

PLOT_SIGNATURE = f"() => {BARS_NOW}"

# Wraps the page's WebSocket so the bench can see when the canvas actually sends the
# drawing: streamlit-drawable-canvas 0.13 debounces its update 200 ms after mouse-up.
WATCH_SENDS = """
window.__sends = [];
const PageWebSocket = window.WebSocket;
window.WebSocket = function (...args) {
    const ws = new PageWebSocket(...args);
    const send = ws.send.bind(ws);
    ws.send = (data) => {
        const size = data && (data.byteLength ?? data.size ?? data.length) || 0;
        window.__sends.push([performance.now(), size]);
        return send(data);
    };
    return ws;
};
window.WebSocket.prototype = PageWebSocket.prototype;
Object.assign(window.WebSocket, PageWebSocket);
"""

RECORD_POINTER_UP = """() => {
    window.__strokeEnd = null;
    if (window.__benchListening) return;
    window.__benchListening = true;
    const mark = () => { if (window.__strokeEnd === null) window.__strokeEnd = performance.now(); };
    document.addEventListener('pointerup', mark, {capture: true});
    document.addEventListener('mouseup', mark, {capture: true});
}"""


def pick_artifacts(arg: str | None) -> Path:
    real = REPO / "artifacts"
    return Path(arg or os.environ.get("MNIST_STUDIO_ARTIFACTS")
                or (real if (real / "manifest.json").is_file() else "/tmp/art"))


def run(artifacts: Path, strokes: int) -> dict:
    from playwright.sync_api import expect, sync_playwright

    from mnist_core.artifacts.files import read_manifest

    manifest = read_manifest(artifacts)
    result: dict = {"artifacts": str(artifacts), "models": list(manifest["models"]),
                    "load_before": os.getloadavg()}
    t_launch = time.perf_counter()
    proc, url = h.start_server(artifacts)
    result["server_up_s"] = time.perf_counter() - t_launch
    try:
        with sync_playwright() as p:
            browser = h.launch_chromium(p)
            context = browser.new_context(viewport={"width": 1280, "height": 1400})
            context.add_init_script(WATCH_SENDS)
            page = context.new_page()
            expect.set_options(timeout=120_000)
            page.goto(url)
            expect(page.locator("canvas.upper-canvas")).to_be_visible(timeout=300_000)
            expect(page.get_by_text("Draw a digit from 0 to 9")).to_be_visible(timeout=300_000)
            result["cold_usable_s"] = time.perf_counter() - t_launch
            home = page.locator("canvas.upper-canvas").bounding_box()
            result["rss_idle_mb"] = h.rss_mb(proc.pid)

            latencies, settled_ms, sent_ms, after_send_ms = [], [], [], []
            server_ms, read_ms = [], []
            for i in range(strokes + 1):  # the first stroke warms up and is not counted
                name, points = SHAPES[i % len(SHAPES)]
                # Clear mounts a new canvas; for a moment it sits below the old one's place.
                # Wait until only the new one is left, back where the canvas lives.
                page.locator("canvas.upper-canvas").evaluate_all(MARK_OLD_CANVASES)
                page.get_by_role("button", name="Clear").click()
                expect(page.get_by_text("Draw a digit from 0 to 9")).to_be_visible()
                expect(page.locator(BARS)).to_have_count(0)
                canvas = page.locator(NEW_CANVAS)
                expect(canvas).to_have_count(1)
                page.wait_for_function(NEW_CANVAS_IN_PLACE,
                                       arg=[canvas.element_handle(), home["y"]], polling="raf")
                page.evaluate(RECORD_POINTER_UP)
                previous = page.evaluate(PLOT_SIGNATURE)
                h.draw_stroke(page, canvas, points, steps=15)
                done = page.wait_for_function(PLOT_CHANGED, arg=previous, polling="raf",
                                              timeout=60_000).json_value()
                settled = page.wait_for_function(SETTLED, polling="raf").json_value()
                stroke_end = page.evaluate("window.__strokeEnd")
                sent = page.evaluate(  # the rerun request carrying the drawing (kilobytes)
                    "(t) => (window.__sends.find(([at, size]) => at >= t && size > 1000)"
                    " || [null])[0]",
                    stroke_end)
                caption = page.get_by_text(re.compile(r"ms on the server")).inner_text()
                match = re.search(r"in (\d+) ms; this (?:whole page|rerun of the drawing "
                                  r"board) took (\d+) ms", caption)
                if i == 0:
                    continue
                latencies.append(done - stroke_end)
                settled_ms.append(max(settled, done) - stroke_end)
                if sent is not None:
                    sent_ms.append(sent - stroke_end)
                    after_send_ms.append(done - sent)
                if match:
                    read_ms.append(int(match.group(1)))
                    server_ms.append(int(match.group(2)))
            result.update(stroke_ms=latencies, settled_ms=settled_ms, sent_ms=sent_ms,
                          after_send_ms=after_send_ms, server_page_ms=server_ms,
                          server_read_ms=read_ms, rss_mb=h.rss_mb(proc.pid))

            # Warm load: a new tab on the running server, until the Draw page is usable.
            tab = browser.new_page(viewport={"width": 1280, "height": 1400})
            t0 = time.perf_counter()
            tab.goto(url)
            expect(tab.get_by_text("Draw a digit from 0 to 9")).to_be_visible()
            result["warm_usable_s"] = time.perf_counter() - t0
            browser.close()
    finally:
        h.stop_server(proc)
    return result


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    q = statistics.quantiles(values, n=10) if len(values) >= 10 else [min(values), max(values)]
    return (f"median **{statistics.median(values):.0f} ms** (p10 {q[0]:.0f}, p90 {q[-1]:.0f}, "
            f"max {max(values):.0f}; n={len(values)})")


def write_report(result: dict, out: Path, command: str, note: str = "") -> str:
    which = ("the repository's trained artifacts (`artifacts/`)"
             if Path(result["artifacts"]).resolve() == (REPO / "artifacts").resolve()
             else f"`{result['artifacts']}`")
    lines = [
        h.measured(None, "Streamlit", "Playwright", "chromium",
                   load_before=result["load_before"])
        + " Other work was running on the machine, so these are pessimistic.",
        "",
        f"In headless Chromium (`{h.chromium_path()}`) against {which}: models "
        f"{', '.join(result['models'])}." + (f" {note}" if note else ""),
        "",
        *h.table(["What", "Result"], [
            ("Stroke end (mouse up) to new probability bars drawn", summary(result["stroke_ms"])),
            ("Stroke end to the whole page updated (no stale element, every image loaded)",
             summary(result["settled_ms"])),
            ("of which mouse-up to the canvas sending the drawing (its fixed 200 ms debounce)",
             summary(result["sent_ms"])),
            ("of which drawing sent to new bars drawn (network, server, rendering)",
             summary(result["after_send_ms"])),
            ("Server time of that rerun (the Draw page script, or its drawing board where "
             "that is a fragment)",
             summary(result["server_page_ms"])),
            ("of which preprocessing + every model's prediction",
             summary(result["server_read_ms"])),
            ("Cold start: `streamlit run` to server answering", f"{result['server_up_s']:.1f} s"),
            ("Cold start: `streamlit run` to Draw page usable (models loaded)",
             f"{result['cold_usable_s']:.1f} s"),
            ("Warm page load in a new tab until usable", f"{result['warm_usable_s']:.2f} s"),
            ("Server RSS, models loaded, page idle", f"{result['rss_idle_mb']:.0f} MB"),
            ("Server RSS after the strokes", f"{result['rss_mb']:.0f} MB")]),
        "",
        "Each stroke is one single-stroke digit drawn with Playwright's mouse (15 steps per "
        "segment) on a canvas just cleared with the Clear button; the clock starts at the "
        "page's own `pointerup` event and stops on the first animation frame where the "
        "probability bars (HTML bars, or the plotly figure on a commit before issue 21) "
        "hold new numbers, and for the second row where also no element is left stale and "
        "every image has loaded. The canvas component waits 200 ms after mouse-up before "
        "it sends the drawing (`Bc = 200` in streamlit-drawable-canvas 0.13's frontend); "
        "the bench sees the send by wrapping the page's WebSocket. The first stroke is a "
        "warm-up and not counted. Server times come from the caption the Draw page prints.",
        "", *h.code_block(command)]
    return h.write_report(out, "Browser benchmark", lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", help="artifacts folder (default: see module docstring)")
    parser.add_argument("--strokes", type=int, default=24)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "BROWSER.md"))
    parser.add_argument("--note", default="", help="a sentence added to the report")
    args = parser.parse_args()
    h.require_chromium()
    artifacts = pick_artifacts(args.artifacts)
    result = run(artifacts, max(20, args.strokes))
    print(write_report(result, Path(args.out), h.command(), args.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
