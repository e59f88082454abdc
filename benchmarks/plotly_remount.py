"""What the probability bars cost the browser on each rerun, and why (benchmarks/BROWSER.md).

Streamlit 1.67 gives every ``st.plotly_chart`` an element id hashed from its figure, so a
rerun with new probabilities mounts a new chart (``Plotly.newPlot``) instead of updating the
old one in place (streamlit/streamlit PR #16052, open, changes this for keyed charts).
This script measures it in isolation: a minimal app whose button reruns it with new random
probabilities, shown as

* ``none``: no chart (the rerun itself: click, websocket, script, React);
* ``html``: the same 40 bars as a static SVG in ``st.html``;
* ``plotly``: the app's own figure (``ui.charts.probability_figure``, four panels);
* ``plotly-static``: the same with ``staticPlot`` (no hover or event layers);
* ``plotly-one-axis``: the four models' bars grouped on one axis.

It reports, per variant, the median time from the click to the page updated (the chart
drawn with the new probabilities, nothing stale) over ``--clicks`` reruns, variants
interleaved over ``--rounds``, and whether the chart's DOM node survived the rerun.

Tried and dropped: giving keyed charts a key-only id, as PR #16052 does on the server
(``compute_and_register_element_id`` called with ``key_as_main_identity=True``, patched in).
The chart node then survives every rerun and the rerun costs what ``none`` costs, but the
bars never change: Streamlit 1.67's frontend keeps the figure it first drew for an id and
ignores a new spec (the PR changes the frontend for that too), so the page waits forever
for the new probabilities. On the Draw page it would not help anyway: each digit is drawn
on a cleared canvas, where the bars are gone, so its chart is always a new one.

    .venv/bin/python benchmarks/plotly_remount.py --rounds 3 --clicks 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

import harness as h

REPO = h.REPO

VARIANTS = ("none", "html", "plotly", "plotly-static", "plotly-one-axis")

APP = textwrap.dedent('''
    import sys
    import numpy as np
    import plotly.graph_objects as go
    import streamlit as st
    sys.path.insert(0, REPO)
    from ui.charts import PLOTLY_CONFIG, model_color, probability_figure

    variant = st.query_params.get("v", "plotly")
    st.session_state.setdefault("n", 0)
    if st.button("next", key="next"):
        st.session_state.n += 1
    rng = np.random.default_rng(st.session_state.n)
    probs = {n: rng.dirichlet(np.ones(10) * 0.3) for n in ("numpy", "dense", "cnn", "lenet5")}
    if variant == "html":
        bars = "".join(
            f'<rect x="{i * 12 + k * 130}" y="{100 - 100 * v:.1f}" width="10" '
            f'height="{100 * v:.1f}" fill="{model_color(n)}"/>'
            for k, (n, p) in enumerate(probs.items()) for i, v in enumerate(p))
        st.html(f'<svg width="100%" height="230" viewBox="0 0 520 110">{bars}</svg>')
    elif variant == "plotly-one-axis":
        fig = go.Figure([go.Bar(x=[str(i) for i in range(10)], y=p, name=n,
                                marker_color=model_color(n)) for n, p in probs.items()],
                        layout=dict(height=230, barmode="group", showlegend=False,
                                    margin=dict(l=40, r=8, t=20, b=28)))
        st.plotly_chart(fig, config=PLOTLY_CONFIG, key="bars")
    elif variant != "none":
        config = dict(PLOTLY_CONFIG, staticPlot=variant == "plotly-static")
        st.plotly_chart(probability_figure(probs, {n: n for n in probs},
                                           [str(i) for i in range(10)]),
                        config=config, key="bars")
    st.write(f"n={st.session_state.n}")
''')

# The chart counts as updated once it holds the new probabilities, not merely when drawn.
TAG = ("() => { const g = document.querySelector('.js-plotly-plot'); if (g) g.dataset.tag = '1'; "
       "window.__bars = g && g.data ? JSON.stringify(g.data.map(t => t.y)) : ''; }")
KEPT = "() => !!document.querySelector('.js-plotly-plot[data-tag]')"


def run_variant(browser, url: str, variant: str, clicks: int) -> tuple[list[float], int]:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/?v={variant}")
    expect(page.get_by_text("n=0")).to_be_visible(timeout=60_000)
    chart = variant.startswith("plotly")
    times, kept = [], 0
    for i in range(clicks):
        page.evaluate(TAG)
        t0 = page.evaluate("performance.now()")
        page.get_by_role("button", name="next").click()
        ready = (f"document.body.innerText.includes('n={i + 1}') && "
                 "!document.querySelector('[data-stale=\"true\"]')")
        if chart:
            ready += (" && (() => { const el = document.querySelector('.js-plotly-plot'); "
                      "return el && el._fullLayout && el.querySelector('.main-svg') && el.data && "
                      "JSON.stringify(el.data.map(t => t.y)) !== window.__bars; })()")
        t1 = page.wait_for_function(f"() => ({ready}) ? performance.now() : false",
                                    polling="raf").json_value()
        if i >= 2:  # the first reruns load the chart's code
            times.append(t1 - t0)
            kept += bool(chart and page.evaluate(KEPT))
    page.close()
    return times, kept


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=12)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "PLOTLY_REMOUNT.md"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="plotly-remount-"))
    (folder / "app.py").write_text(f"REPO = {str(REPO)!r}\n" + APP)
    proc, url = h.start_server(app=folder / "app.py")
    results: dict[str, list[float]] = {v: [] for v in VARIANTS}
    kept: dict[str, int] = dict.fromkeys(VARIANTS, 0)
    try:
        with sync_playwright() as p:
            browser = h.launch_chromium(p)
            for _ in range(args.rounds):
                for v in VARIANTS:
                    times, k = run_variant(browser, url, v, args.clicks)
                    results[v] += times
                    kept[v] += k
            browser.close()
    finally:
        h.stop_server(proc)
    lines = [
        h.measured(h.command("python"), "Streamlit", "Plotly", "Playwright", "chromium",
                   load_before=load_before)
        + " In headless Chromium; the load includes the server and Chromium of this script.",
        "", __doc__.split("\n\n", 1)[1].split("\n    .venv")[0].strip(), "",
        f"Click to page updated, median of {args.rounds} x {args.clicks - 2} reruns:", "",
        *h.table(["variant", "median ms", "chart node kept across reruns"],
                 [(v, f"{statistics.median(results[v]):.0f}",
                   f"{kept[v]} of {len(results[v])}" if v.startswith("plotly") else "—")
                  for v in VARIANTS])]
    h.write_report(args.out, "What the probability bars cost the browser per rerun", lines)
    print("\n".join(lines[-7:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
