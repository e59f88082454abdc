"""A real browser and a person's pen, for the smoke test, the tests and the benchmarks:
Debian's Chromium driven by Playwright (whose own browsers are never installed), and pen
strokes on the canvas. Imports nothing of the app, and Playwright only when a browser is
launched.

Strokes are lists of ``(x, y)`` points in fractions of the canvas (0, 0 top left).
"""

from __future__ import annotations

import shutil

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)]   # a top bar, then the diagonal down

# Rough pen paths per digit, in fractions of the canvas: each list is one stroke.
STROKES = {
    0: [[(0.5, 0.15), (0.3, 0.3), (0.3, 0.7), (0.5, 0.85), (0.7, 0.7), (0.7, 0.3), (0.5, 0.15)]],
    1: [[(0.5, 0.15), (0.5, 0.85)]],
    2: [[(0.3, 0.3), (0.5, 0.18), (0.7, 0.3), (0.3, 0.82), (0.75, 0.82)]],
    3: [[(0.3, 0.2), (0.7, 0.3), (0.45, 0.5), (0.7, 0.7), (0.3, 0.82)]],
    4: [[(0.6, 0.15), (0.25, 0.6), (0.75, 0.6)], [(0.6, 0.3), (0.6, 0.85)]],
    5: [[(0.7, 0.18), (0.35, 0.18), (0.33, 0.48), (0.65, 0.5), (0.65, 0.75), (0.3, 0.82)]],
    6: [[(0.65, 0.15), (0.35, 0.5), (0.35, 0.8), (0.65, 0.8), (0.65, 0.55), (0.35, 0.55)]],
    7: [SEVEN],
    8: [[(0.5, 0.5), (0.3, 0.3), (0.5, 0.15), (0.7, 0.3), (0.3, 0.7), (0.5, 0.85), (0.7, 0.7),
         (0.5, 0.5)]],
    9: [[(0.65, 0.3), (0.5, 0.15), (0.35, 0.3), (0.5, 0.45), (0.65, 0.3), (0.65, 0.85)]],
}


def chromium_path() -> str | None:
    """Debian's Chromium, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright):
    """Chromium through ``playwright``: the browser, or with the async API an awaitable
    of it."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def _points(box: dict, points) -> list[tuple[float, float]]:
    return [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]


def draw_stroke(page, canvas, points, steps: int = 15) -> None:
    """Press, drag through ``points`` (fractions of ``canvas``) and release; ``steps``
    mouse moves between two points (the canvas sees a pen, not a jump)."""
    xy = _points(canvas.bounding_box(), points)
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


async def draw_stroke_async(page, canvas, points, steps: int = 15) -> None:
    """:func:`draw_stroke` through Playwright's async API."""
    xy = _points(await canvas.bounding_box(), points)
    await page.mouse.move(*xy[0])
    await page.mouse.down()
    for x, y in xy[1:]:
        await page.mouse.move(x, y, steps=steps)
    await page.mouse.up()
