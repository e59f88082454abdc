"""The probability bars in the browser: what each way of drawing them costs a rerun
(benchmarks/PLOTLY_REMOUNT.md).

Streamlit 1.67 gives every ``st.plotly_chart`` an element id hashed from its figure, so a
rerun with new probabilities mounts a new chart (``Plotly.newPlot``) instead of updating the
old one in place (streamlit/streamlit PR #16052, open, changes this for keyed charts).
This script measures the bars in isolation: a minimal app whose button reruns it with new
random probabilities for four models, shown as

* ``none``: no bars (the rerun itself: click, websocket, script, React);
* ``html-bars``: the app's bars since issue 21, ``ui.charts.probability_bars`` in ``st.html``;
* ``altair-keyed``: the same bars as a keyed Vega-Lite chart (``st.altair_chart(key=...)``,
  one facet per model), which keeps its identity and swaps its data in place;
* ``plotly``: the bars before issue 21 (``benchmarks/plotly_bars.py``, four panels).

It reports, per variant, the median time from the click to the page updated (the bars
drawn with the new probabilities, nothing stale) over ``--clicks`` reruns, variants
interleaved over ``--rounds``, and whether the bars' DOM node survived the rerun.

Chosen by this measurement: ``html-bars``, a few ms over no bars at all. The keyed
Vega-Lite chart does update in place in Streamlit 1.67 (its node survives every rerun), but
Vega draws the new data for most of what plotly's new chart costs; ``st.html`` has no
identity to keep, and swapping its few kB of HTML is nearly free.

Measured before and dropped (2026-11-29): plotly with ``staticPlot`` (9 ms faster than
plotly), the four models grouped on one plotly axis (25 ms faster), static SVG in
``st.html`` (as fast as no chart). Also tried and dropped: giving keyed plotly charts a
key-only id, as PR #16052 does on the server: Streamlit 1.67's frontend then keeps the
figure it first drew and never shows the new probabilities.

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

VARIANTS = ("none", "html-bars", "altair-keyed", "plotly")

APP = textwrap.dedent('''
    import sys
    import numpy as np
    import pandas as pd
    import streamlit as st
    sys.path.insert(0, REPO)
    sys.path.insert(0, REPO + "/benchmarks")
    from ui.charts import PLOTLY_CONFIG, model_color, probability_bars
    from plotly_bars import probability_figure

    variant = st.query_params.get("v", "plotly")
    st.session_state.setdefault("n", 0)
    if st.button("next", key="next"):
        st.session_state.n += 1
    rng = np.random.default_rng(st.session_state.n)
    names = ("numpy", "dense", "cnn", "lenet5")
    probs = {n: rng.dirichlet(np.ones(10) * 0.3) for n in names}
    digits = [str(i) for i in range(10)]
    if variant == "html-bars":
        st.html(probability_bars(probs, {n: n for n in probs}, digits))
    elif variant == "altair-keyed":
        import altair as alt
        df = pd.DataFrame([{"model": n, "digit": d, "p": float(v), "top": bool(v == p.max()),
                            "label": f"{v:.0%}" if v == p.max() else ""}
                           for n, p in probs.items() for d, v in zip(digits, p)])
        scale = alt.Scale(domain=list(names), range=[model_color(n) for n in names])
        base = alt.Chart().encode(x=alt.X("digit:O", title=None, axis=alt.Axis(labelAngle=0)),
                                  y=alt.Y("p:Q", scale=alt.Scale(domain=[0, 1]), title=None,
                                          axis=alt.Axis(format="%", values=[0, 0.5, 1])))
        bars = base.mark_bar().encode(color=alt.condition("datum.top",
                                      alt.Color("model:N", scale=scale, legend=None),
                                      alt.value("#cbd5e1")))
        text = base.mark_text(dy=-8).encode(text="label:N")
        chart = alt.layer(bars, text, data=df).properties(width=110, height=150).facet(
            column=alt.Column("model:N", title=None, sort=list(names)))
        st.altair_chart(chart, key="bars")
    elif variant == "plotly":
        st.plotly_chart(probability_figure(probs, {n: n for n in probs}, digits),
                        config=PLOTLY_CONFIG, key="bars")
    st.write(f"n={st.session_state.n}")
''')

# What identifies the bars on the page, and a signature of what they show now: the bars
# count as updated once the signature changes, not merely when something is drawn.
NODE = {"html-bars": ".mb", "altair-keyed": '[data-testid="stVegaLiteChart"]',
        "plotly": ".js-plotly-plot"}
SIGNATURE = {
    "html-bars": "(el) => el.dataset.bars",
    "altair-keyed": ("(el) => { const c = el.querySelector('canvas'); if (c) return c.toDataURL(); "
                     "const s = el.querySelector('svg'); return s ? s.outerHTML : null; }"),
    "plotly": ("(el) => el._fullLayout && el.querySelector('.main-svg') && el.data ? "
               "JSON.stringify(el.data.map(t => t.y)) : null"),
}


def signature_js(variant: str) -> str:
    return (f"(() => {{ const el = document.querySelector({NODE[variant]!r}); "
            f"return el ? ({SIGNATURE[variant]})(el) : null; }})()")


def run_variant(browser, url: str, variant: str, clicks: int) -> tuple[list[float], int]:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/?v={variant}")
    expect(page.get_by_text("n=0")).to_be_visible(timeout=60_000)
    chart = variant != "none"
    if chart:
        page.wait_for_function(f"() => {signature_js(variant)}", timeout=60_000)
    times, kept = [], 0
    for i in range(clicks):
        if chart:
            page.evaluate(f"() => {{ document.querySelector({NODE[variant]!r}).dataset.tag = '1';"
                          f" window.__bars = {signature_js(variant)}; }}")
        t0 = page.evaluate("performance.now()")
        page.get_by_role("button", name="next").click()
        ready = (f"document.body.innerText.includes('n={i + 1}') && "
                 "!document.querySelector('[data-stale=\"true\"]')")
        if chart:
            ready += (f" && (() => {{ const s = {signature_js(variant)}; "
                      "return s && s !== window.__bars; })()")
        t1 = page.wait_for_function(f"() => ({ready}) ? performance.now() : false",
                                    polling="raf").json_value()
        if i >= 2:  # the first reruns load the chart's code
            times.append(t1 - t0)
            kept += bool(chart and page.evaluate(
                f"() => !!document.querySelector({(NODE[variant] + '[data-tag]')!r})"))
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
        h.measured(h.command("python"), "Streamlit", "Plotly", "altair", "Playwright", "chromium",
                   load_before=load_before)
        + " In headless Chromium; the load includes the server and Chromium of this script.",
        "", __doc__.split("\n\n", 1)[1].split("\n    .venv")[0].strip(), "",
        f"Click to page updated, median of {args.rounds} x {args.clicks - 2} reruns:", "",
        *h.table(["variant", "median ms", "p90 ms", "bars' node kept across reruns"],
                 [(v, f"{statistics.median(results[v]):.0f}",
                   f"{h.spread(results[v])['p90_ms']:.0f}",
                   f"{kept[v]} of {len(results[v])}" if v != "none" else "—")
                  for v in VARIANTS])]
    h.write_report(args.out, "What the probability bars cost the browser per rerun", lines)
    print("\n".join(lines[-(len(VARIANTS) + 3):]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
