"""The report page's chart of each frame's relevance (design §6): `frame_chart_svg` draws it as
inline SVG, one bar per frame (red for the class, blue against, the action interval shaded and
the most relevant frames numbered), and hands over the numbers its script needs; ``_SCRIPT`` is
that script, which keeps the chart and the page's heatmap video in step: a click or drag on the
chart shows that frame, a cursor follows playback, and the page's frame buttons, speed menu and
top-frame figures seek the video. `actionlrp.pages` puts both in ``report.html``.
"""

from __future__ import annotations

import numpy as np

from actionlrp.page_text import _signed
from actionlrp.relevance import Explanation
from actionlrp.render import frame_times


def _nice_step(span: float, count: int) -> float:
    """A step of 1, 2, 2.5 or 5 × 10^k that cuts ``span`` into about ``count`` parts."""
    if span <= 0:
        return 1.0
    raw = span / count
    power = 10.0 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw))


#: The frame chart's drawing box (SVG user units; the chart scales to the page).
_CHART = {"width": 860, "height": 300, "left": 66, "right": 14, "top": 26, "bottom": 50}


def frame_chart_svg(
    explanation: Explanation, interval: tuple[int, int] | None = None, top: int = 4
) -> tuple[str, dict]:
    """The relevance of each frame as an SVG bar chart, one ``<rect data-frame>`` per frame,
    and the numbers its script needs (``x0``, ``step``, ``start``, ``seek``, ``r``)."""
    r = np.asarray(explanation.frame_relevance, dtype=np.float64)
    n = len(r)
    start, duration = frame_times(explanation.field, n)
    c = _CHART
    x0, y0 = c["left"], c["top"]
    pw = c["width"] - c["left"] - c["right"]
    ph = c["height"] - c["top"] - c["bottom"]
    step = pw / max(n, 1)
    lo, hi = min(0.0, float(r.min(initial=0.0))), max(0.0, float(r.max(initial=0.0)))
    if hi - lo <= 0:
        hi = 1.0
    tick = _nice_step(hi - lo, 4)
    lo, hi = np.floor(lo / tick - 0.05) * tick, np.ceil(hi / tick + 0.05) * tick
    lo, hi = (min(lo, 0.0), max(hi, 0.0))

    def y(v: float) -> float:
        return y0 + (hi - v) / (hi - lo) * ph

    parts = [
        f'<rect class="plot" x="{x0}" y="{y0}" width="{pw:.2f}" height="{ph}"></rect>',
    ]
    if interval is not None:
        a, b = max(0, int(interval[0])), min(n, int(interval[1]))
        if b > a:
            parts.append(
                f'<rect class="interval" x="{x0 + a * step:.2f}" y="{y0}" '
                f'width="{(b - a) * step:.2f}" height="{ph}"><title>action interval: frames '
                f"{a}–{b - 1}</title></rect>"
                f'<text class="interval-label" x="{x0 + a * step:.2f}" y="{y0 - 5}">'
                "action interval</text>"
            )
    for v in np.arange(lo, hi + tick / 2, tick):
        v = 0.0 if abs(v) < tick * 1e-6 else float(v)
        parts.append(
            f'<line class="grid" x1="{x0}" x2="{x0 + pw:.2f}" y1="{y(v):.2f}" y2="{y(v):.2f}">'
            f'</line><text class="tick" x="{x0 - 6}" y="{y(v) + 4:.2f}" text-anchor="end">'
            f"{f'{v:.3g}'.replace('-', '−')}</text>"
        )
    gap = min(0.15 * step, 2.0) if step > 3 else 0.0
    zero = y(0.0)
    for t, v in enumerate(r):
        top_y, bottom_y = sorted((y(v), zero))
        kind = "pos" if v >= 0 else "neg"
        parts.append(
            f'<rect class="{kind}" data-frame="{t}" x="{x0 + t * step + gap / 2:.2f}" '
            f'y="{top_y:.2f}" width="{step - gap:.2f}" height="{bottom_y - top_y:.2f}">'
            f"<title>frame {t} · {start[t]:.2f} s · r = {_signed(v)}</title></rect>"
        )
    placed: list[tuple[float, float]] = []  # (x, y) of the rank labels so far
    for rank, t in enumerate(explanation.top_frames(top), 1):
        x, label_y = x0 + (t + 0.5) * step, min(y(r[t]), zero) - 4
        while any(abs(x - px) < 9 and abs(label_y - py) < 11 for px, py in placed):
            label_y -= 11  # stack the labels of frames next to each other
        placed.append((x, label_y))
        parts.append(
            f'<text class="rank" x="{x:.2f}" y="{label_y:.2f}" text-anchor="middle">{rank}</text>'
        )
    parts.append(
        f'<line class="zero" x1="{x0}" x2="{x0 + pw:.2f}" y1="{zero:.2f}" y2="{zero:.2f}"></line>'
    )
    frame_tick = max(1, int(_nice_step(n, 10)))
    for t in range(0, n, frame_tick):
        x = x0 + (t + 0.5) * step
        parts.append(
            f'<line class="axis" x1="{x:.2f}" x2="{x:.2f}" y1="{y0 + ph}" y2="{y0 + ph + 4}">'
            f'</line><text class="tick" x="{x:.2f}" y="{y0 + ph + 16}" text-anchor="middle">'
            f'{t}</text><text class="tick time" x="{x:.2f}" y="{y0 + ph + 28}" '
            f'text-anchor="middle">{start[t]:.2f} s</text>'
        )
    parts.append(
        f'<text class="label" x="{x0 + pw / 2:.2f}" y="{c["height"] - 6}" text-anchor="middle">'
        "frame (time from the first frame)</text>"
        f'<text class="label" transform="translate(14 {y0 + ph / 2:.2f}) rotate(-90)" '
        'text-anchor="middle">relevance r<tspan baseline-shift="sub" font-size="9">t</tspan>'
        "</text>"
        f'<line id="cursor" x1="{x0 + step / 2:.2f}" x2="{x0 + step / 2:.2f}" y1="{y0 - 6}" '
        f'y2="{y0 + ph}"></line>'
    )
    svg = (
        f'<svg id="frame-chart" viewBox="0 0 {c["width"]} {c["height"]}" role="img" '
        f'aria-label="relevance of each frame">'
        f"{''.join(parts)}</svg>"
    )
    data = {
        "x0": x0,
        "step": step,
        "start": [round(float(v), 6) for v in start],
        "seek": [round(float(s + d / 2), 6) for s, d in zip(start, duration, strict=True)],
        "r": [_signed(float(v)) for v in r],
    }
    return svg, data


_SCRIPT = """
(() => {
  const video = document.getElementById("heatmap");
  const chart = document.getElementById("frame-chart");
  const data = JSON.parse(document.getElementById("frame-data").textContent);
  const bars = chart.querySelectorAll("rect[data-frame]");
  const cursor = document.getElementById("cursor");
  const readout = document.getElementById("readout");
  const n = bars.length;
  let shown = -1, raf = 0;
  const frameAt = time => {  // the last frame that starts at or before `time`
    let lo = 0, hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (data.start[mid] <= time + 1e-6) lo = mid; else hi = mid - 1;
    }
    return lo;
  };
  const show = k => {
    if (k === shown) return;
    if (shown >= 0) bars[shown].classList.remove("current");
    shown = k;
    bars[k].classList.add("current");
    const x = data.x0 + (k + 0.5) * data.step;
    cursor.setAttribute("x1", x);
    cursor.setAttribute("x2", x);
    cursor.setAttribute("data-frame", k);
    readout.textContent =
      `frame ${k} of ${n} · ${data.start[k].toFixed(2)} s · r = ${data.r[k]}`;
  };
  const seek = k => {
    k = Math.max(0, Math.min(n - 1, k));
    video.pause();
    video.currentTime = data.seek[k];
    show(k);
  };
  const frameOfEvent = e => {
    if (e.target.dataset && e.target.dataset.frame !== undefined) return +e.target.dataset.frame;
    const point = new DOMPoint(e.clientX, e.clientY).matrixTransform(
      chart.getScreenCTM().inverse());
    return Math.floor((point.x - data.x0) / data.step);
  };
  chart.addEventListener("click", e => seek(frameOfEvent(e)));
  chart.addEventListener("pointermove", e => { if (e.buttons === 1) seek(frameOfEvent(e)); });
  const follow = () => show(frameAt(video.currentTime));
  const loop = () => {
    follow();
    raf = !video.paused && !video.ended ? requestAnimationFrame(loop) : 0;
  };
  video.addEventListener("timeupdate", follow);
  video.addEventListener("seeked", follow);
  video.addEventListener("play", () => { if (!raf) raf = requestAnimationFrame(loop); });
  document.getElementById("prev").addEventListener("click", () => seek(shown - 1));
  document.getElementById("next").addEventListener("click", () => seek(shown + 1));
  document.getElementById("speed").addEventListener("change", e => {
    video.playbackRate = +e.target.value;
  });
  document.querySelectorAll("[data-seek]").forEach(el => el.addEventListener("click", () => {
    seek(+el.dataset.seek);
    video.scrollIntoView({behavior: "smooth", block: "nearest"});
  }));
  show(0);
})();
"""
