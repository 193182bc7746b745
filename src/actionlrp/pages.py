"""The HTML pages of explanations and the numbers they print (design §6).

`write_report` writes one clip's ``report.html``: it asks "Why <class>?" (or "Why <class> and
not <versus>?"), lists every class's score, says in a sentence how much of the score the heatmap
shows (`share_sentences`), plays the heatmap video above a chart of each frame's relevance
(`frame_chart_svg`: a click on a bar shows that frame; a cursor follows playback), and shows the
most relevant frames and the HOF, MBHx and MBHy heatmaps of the most relevant one. The page is
one self-contained file — video and images as data URIs, the chart as inline SVG, its style and
script inline, nothing fetched — that can be opened or sent on its own; beside it go the figures
that `actionlrp.render` draws and ``summary.json`` (`summary`). `write_dataset_page` writes the
page of a whole dataset's explanations (`actionlrp.report` runs them).

This module lays the pages out, with their style sheet and the tables drawn in HTML; the frame
chart and its script are `actionlrp.frame_chart`, the numbers and sentences `actionlrp.page_text`.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import cv2
import numpy as np

from actionlrp.atomic import write_text_atomic
from actionlrp.frame_chart import _SCRIPT, frame_chart_svg
from actionlrp.page_text import _number, _percents, _signed, rule_text, share_sentences, summary
from actionlrp.relevance import Explanation
from actionlrp.render import (
    FEATURE_NAMES,
    _decode_frames,
    colour_limit,
    feature_list,
    overlay_at_width,
    plot_feature_heatmaps,
    plot_feature_shares,
    plot_frame_relevance,
    plot_top_frames,
    write_heatmap_video,
)

# --------------------------------------------------------------------------------------------
# One clip's report


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _jpeg_uri(rgb: np.ndarray, quality: int = 90) -> str:
    """An RGB frame as a JPEG data URI: full-resolution colour (4:4:4), so the heat's edges stay
    sharp, at about a sixth of a PNG's size."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:  # pragma: no cover — OpenCV encodes any uint8 image
        raise ValueError("could not encode a JPEG")
    return f"data:image/jpeg;base64,{base64.b64encode(jpeg.tobytes()).decode()}"


#: Width in pixels of the report's frame images (small clips are upsampled, large ones shrunk).
FRAME_WIDTH = 640


def _heading(explanation: Explanation) -> tuple[str, str]:
    """("Why <class>?" or "Why <class> and not <versus>?") as HTML and as text."""
    c = html.escape(explanation.class_name)
    if explanation.versus is None:
        return f"Why <em>{c}</em>?", f"Why {explanation.class_name}?"
    v = html.escape(explanation.versus)
    return (
        f"Why <em>{c}</em> and not <em>{v}</em>?",
        f"Why {explanation.class_name} and not {explanation.versus}?",
    )


def _bar_cell(value: float, biggest: float, kind: str) -> str:
    """A bar from the middle of the cell, right for positive values, left for negative."""
    half = 50 * min(abs(value) / biggest, 1.0) if biggest > 0 else 0.0
    left = 50 if value >= 0 else 50 - half
    return (
        f'<td class="bar"><div class="track"><div class="fill {kind}" '
        f'style="left:{left:.1f}%;width:{half:.1f}%"></div></div></td>'
    )


def _pyramid_grids(channels: dict[str, float]) -> str:
    """Σ R(3) of each space-time pyramid cell as its grid drawn small, one per time slice
    (red for, blue against, shaded by |value| over the largest); "" without a pyramid."""
    if not channels:
        return ""
    biggest = max(abs(v) for v in channels.values()) or 1.0
    grids: dict[str, dict[tuple[int, int, int], float]] = {}
    for name, value in channels.items():
        grid, _, cell = name.partition(" ")
        grids.setdefault(grid, {})[tuple(int(i) for i in cell.strip("()").split(","))] = value
    figures = []
    for grid, cells in grids.items():
        nx, ny, nt = (int(n) for n in grid.split("x"))
        for t in range(nt):
            rows = []
            for y in range(ny):
                tds = []
                for x in range(nx):
                    value = cells[x, y, t]
                    colour = "192,57,43" if value >= 0 else "44,123,182"
                    alpha = abs(value) / biggest
                    tds.append(
                        f'<td title="pyramid cell {grid} ({x},{y},{t})" '
                        f'style="background:rgba({colour},{alpha:.2f})">{_signed(value)}</td>'
                    )
                rows.append(f"<tr>{''.join(tds)}</tr>")
            when = f", time {t + 1} of {nt}" if nt > 1 else ""
            figures.append(
                f"<figure><table class='cells'>{''.join(rows)}</table>"
                f"<figcaption>{grid.replace('x', '×')}{when}</figcaption></figure>"
            )
    return (
        "<h2>Where in the space-time pyramid</h2><p class='hint'>Σ relevance of each cell's "
        "channel of the Fisher vector; a cube feeds one cell of every grid.</p>"
        f"<div class='pyramid'>{''.join(figures)}</div>"
    )


def _scores_table(explanation: Explanation) -> str:
    scores = sorted(explanation.scores.items(), key=lambda kv: -kv[1])
    biggest = max(abs(v) for _, v in scores) if scores else 1.0
    predicted = scores[0][0] if scores else None
    rows = []
    for name, value in scores:
        kind, tags = "", []
        if name == explanation.class_name:
            kind, tags = "explained", ["explained"]
        elif name == explanation.versus:
            kind, tags = "contrasted", ["contrasted"]
        if name == predicted:
            tags.append("predicted")
        badges = "".join(f' <span class="tag {t}">{t}</span>' for t in tags)
        rows.append(
            f'<tr class="{kind}"><td>{html.escape(name)}{badges}</td>'
            f'<td class="num">{_number(value)}</td>{_bar_cell(value, biggest, kind or "other")}'
            "</tr>"
        )
    return (
        '<div class="scroll"><table class="scores"><tr><th>class</th><th>score f(x)</th><th></th>'
        f"</tr>{''.join(rows)}</table></div>"
    )


def _explained_score(explanation: Explanation) -> str:
    c, s = explanation.class_name, explanation.scores
    if explanation.versus is None:
        return (
            f"Explained score f<sub>c</sub> = f({html.escape(c)}) = "
            f"<b>{_number(explanation.score)}</b>"
        )
    v = explanation.versus
    return (
        f"Explained score f<sub>c</sub> − f<sub>versus</sub> = f({html.escape(c)}) − "
        f"f({html.escape(v)}) = {_number(s[c])} − {_number(s[v])} = "
        f"<b>{_number(explanation.score)}</b>"
    )


_STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1348px;margin:0 auto;
  padding:20px 24px 48px;color:#222;line-height:1.45;background:#fff}
h1{font-size:1.9em;margin:0 0 2px} h1 em{font-style:normal;color:#b03a2e}
h1 em+em{color:#1f6fa8}
h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #e4e4e4;padding-bottom:3px}
.sub{color:#666;margin:0 0 16px}
.top{display:grid;grid-template-columns:minmax(0,1fr) 420px;gap:28px;align-items:start}
video{display:block;width:100%;max-height:64vh;background:#111;object-fit:contain}
.controls{display:flex;gap:8px;align-items:center;margin:6px 0 2px;font-size:.92em}
.controls button,.controls select{font:inherit;padding:1px 8px}
#readout{font-variant-numeric:tabular-nums;color:#333;margin-left:6px}
#frame-chart{display:block;width:100%;height:auto;user-select:none}
#frame-chart .plot{fill:#fafafa;cursor:pointer}
#frame-chart .pos{fill:#c0392b;cursor:pointer} #frame-chart .neg{fill:#2c7bb6;cursor:pointer}
#frame-chart rect[data-frame]:hover{opacity:.7}
#frame-chart .current{stroke:#111;stroke-width:1.5}
#frame-chart .interval{fill:#f1c40f;fill-opacity:.22;pointer-events:none}
#frame-chart .interval-label{font-size:11px;fill:#8a6d00}
#frame-chart .grid{stroke:#e6e6e6} #frame-chart .zero{stroke:#222;stroke-width:1}
#frame-chart .axis{stroke:#444} #frame-chart .tick{font-size:11px;fill:#444}
#frame-chart .time{fill:#888;font-size:10px} #frame-chart .label{font-size:12px;fill:#333}
#frame-chart .rank{font-size:11px;font-weight:bold;fill:#7b241c;pointer-events:none}
#cursor{stroke:#111;stroke-width:2;pointer-events:none}
.hint{color:#666;font-size:.9em;margin:2px 0 0}
.panel{background:#f7f7f7;border:1px solid #e2e2e2;border-radius:6px;padding:12px 16px}
.panel h2{margin-top:.2em}
.scroll{max-height:330px;overflow:auto}
table{border-collapse:collapse} td,th{padding:3px 8px;text-align:left;vertical-align:top}
th{font-weight:600;color:#555;border-bottom:1px solid #ddd}
.scores{width:100%} .scores td.num{text-align:right;font-variant-numeric:tabular-nums}
.scores th,.scores td.num,.tag{white-space:nowrap}
.scores tr.explained{background:#fbe3df;font-weight:600}
.scores tr.contrasted{background:#dcebf7;font-weight:600}
.tag{font-size:.72em;font-weight:600;border-radius:3px;padding:0 4px;margin-left:4px;
  color:#fff;background:#888;vertical-align:1px}
.tag.explained{background:#b03a2e} .tag.contrasted{background:#1f6fa8}
.tag.predicted{background:#555}
td.bar{width:90px;min-width:90px;vertical-align:middle}
.track{position:relative;height:10px;background:linear-gradient(#bbb,#bbb) 50% 0/1px 100% no-repeat}
.fill{position:absolute;top:0;height:10px;background:#aaa}
.fill.explained{background:#c0392b} .fill.contrasted{background:#2c7bb6}
.fill.pos{background:#c0392b} .fill.neg{background:#2c7bb6}
.score-line{margin:10px 0}
.share{font-size:1.05em;background:#fff;border-left:4px solid #c0392b;padding:8px 12px;
  margin:10px 0}
.share p{margin:0 0 6px} .share p.mass{color:#444;font-size:.92em;margin:0}
.legend{display:flex;align-items:center;gap:8px;font-size:.9em;color:#444;margin:8px 0 0}
.ramp{width:160px;height:12px;border:1px solid #ccc;
  background:linear-gradient(90deg,#0000ff,#ffffff,#ff0000)}
.frames{display:grid;grid-template-columns:repeat(auto-fill,minmax(640px,1fr));gap:16px}
.features{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:16px}
figure{margin:0} figure img{display:block;width:100%;height:auto;border:1px solid #ddd}
.frames figure img{cursor:pointer}
figcaption{font-size:.92em;color:#333;margin-top:4px}
.details td:first-child{color:#555;white-space:nowrap}
.pyramid{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.cells td{border:1px solid #ccc;font-size:.8em;text-align:center;min-width:3.2em;padding:6px 4px}
@media (max-width:1100px){.top{grid-template-columns:1fr}.top .panel{order:-1}
  .features{grid-template-columns:1fr}}
"""


def write_report(
    explanation: Explanation,
    out_dir: str | os.PathLike,
    interval: tuple[int, int] | None = None,
    title: str | None = None,
) -> Path:
    """Write every view of one explanation to ``out_dir``; return ``out_dir/report.html``.

    The folder gets ``heatmap.mp4``, ``frame_relevance.png``, ``feature_shares.png``,
    ``top_frames.png``, ``feature_heatmaps.png``, ``summary.json`` and ``report.html``: one
    self-contained page (video and images as data URIs, an inline SVG chart and script, nothing
    fetched) that can be opened or sent on its own. It asks "Why <class>?" (or "Why <class> and
    not <versus>?"), lists every class's score, says in a sentence how much of the score the
    heatmap shows, plays the heatmap video above a chart of each frame's relevance (a click on
    a bar shows that frame; a cursor follows playback), and shows the most relevant frames at
    640 px wide and the HOF, MBHx and MBHy heatmaps of the most relevant one.

    Parameters
    ----------
    explanation : Explanation
        With the clip's file and motion field (as `ActionModel.explain` gives it).
    out_dir : path-like
    interval : (int, int), optional
        Frames ``[start, stop)`` of the action, shaded on the frame chart.
    title : str, optional
        Default: the clip's file name.

    Examples
    --------
    >>> from actionlrp.model import ActionModel
    >>> explanation = ActionModel.load(model_file).explain(clip)
    >>> report = write_report(explanation, tmp / "report")
    >>> sorted(p.name for p in report.parent.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['feature_heatmaps.png', 'feature_shares.png', 'frame_relevance.png', 'heatmap.mp4',
     'report.html', 'summary.json', 'top_frames.png']
    """
    video, field = explanation.video, explanation.field
    if video is None or field is None:
        raise ValueError(
            "explanation has no video file or motion field to draw on: "
            "explain a file with ActionModel.explain, or pass video= to relevance.explain"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    top = [int(t) for t in explanation.top_frames(4)]
    frames = _decode_frames(video, set(top))
    files = {
        "video": write_heatmap_video(video, explanation, field, out / "heatmap.mp4"),
        "curve": plot_frame_relevance(explanation, out / "frame_relevance.png", interval),
        "shares": plot_feature_shares(explanation, out / "feature_shares.png"),
        "top": plot_top_frames(
            video, explanation, out / "top_frames.png", field.cell, len(top), frames
        ),
        "features": plot_feature_heatmaps(
            video, explanation, out / "feature_heatmaps.png", field.cell, frames=frames
        ),
    }
    numbers = summary(explanation)
    write_text_atomic(out / "summary.json", json.dumps(numbers, indent=2))
    name = html.escape(title or Path(video).name)
    heading, heading_text = _heading(explanation)
    chart, chart_data = frame_chart_svg(explanation, interval, top=len(top))
    start = chart_data["start"]
    limit = colour_limit(explanation.relevance_voxels)
    blank = np.full((field.height, field.width, 3), 128, np.uint8)

    def frame_image(t: int, heat: np.ndarray, lim: float) -> str:
        rgb = frames.get(t)
        return _jpeg_uri(overlay_at_width(blank if rgb is None else rgb, heat, lim, field.cell))

    top_figures = "".join(
        f'<figure data-seek="{t}" title="show frame {t} in the video">'
        f'<img alt="frame {t}" width="{FRAME_WIDTH}" '
        f'src="{frame_image(t, explanation.relevance_voxels[t], limit)}">'
        f"<figcaption><b>#{rank}</b> frame {t} · {start[t]:.2f} s · r<sub>t</sub> = "
        f"{_signed(explanation.frame_relevance[t])}</figcaption></figure>"
        for rank, t in enumerate(top, 1)
    )
    by_feature = explanation.relevance_voxels_by_feature
    best = top[0] if top else 0
    feature_limit = max(colour_limit(m[best]) for m in by_feature.values()) if by_feature else 1.0
    feature_figures = "".join(
        f'<figure><img alt="{FEATURE_NAMES.get(f, f)} on frame {best}" '
        f'src="{frame_image(best, m[best], feature_limit)}">'
        f"<figcaption><b>{FEATURE_NAMES.get(f, f)}</b> · Σ over the clip "
        f"{_signed(explanation.feature_relevance[f])}</figcaption></figure>"
        for f, m in by_feature.items()
    )
    feature_values = numbers["feature_relevance"]
    biggest_feature = max((abs(v) for v in feature_values.values()), default=1.0)
    feature_rows = "".join(
        f"<tr><td>{FEATURE_NAMES.get(f, f)}</td><td class='num'>{_signed(v)}</td>"
        f"{_bar_cell(v, biggest_feature, 'pos' if v >= 0 else 'neg')}</tr>"
        for f, v in feature_values.items()
    )
    if len(explanation.scale_relevance) > 1:
        biggest = max(abs(v) for v in explanation.scale_relevance.values())
        feature_rows += "".join(
            f"<tr><td>cubes of {s} px</td><td class='num'>{_signed(v)}</td>"
            f"{_bar_cell(v, biggest, 'pos' if v >= 0 else 'neg')}</tr>"
            for s, v in explanation.scale_relevance.items()
        )
    pyramid = _pyramid_grids(numbers["pyramid_relevance"])
    c = html.escape(explanation.class_name)
    if explanation.versus is None:
        red, blue = f"evidence for {c}", f"evidence against {c}"
    else:
        v = html.escape(explanation.versus)
        red, blue = f"evidence for {c} over {v}", f"evidence for {v} over {c}"
    net, mass = share_sentences(explanation)
    clip_facts = (
        f"{name} · {field.width}×{field.height} · {field.n_frames} frames at {field.fps:.3g} fps"
        + (f" · {html.escape(field.codec)}" if field.codec else "")
    )
    interval_row = (
        f"<tr><td>action interval</td><td>frames {interval[0]}–{interval[1] - 1}</td></tr>"
        if interval is not None
        else ""
    )
    if getattr(explanation, "method", "lrp") == "occlusion":
        absorbed_label, how_label, how = "left in interactions of regions", "method", "occlusion"
    else:
        absorbed_label = f"absorbed by ε = {explanation.rule.epsilon:g}"
        how_label, how = "rule", html.escape(rule_text(numbers["rule"]))
    data_json = json.dumps(chart_data).replace("</", "<\\/")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(heading_text)} — {name} (actionlrp)</title>
<style>{_STYLE}</style></head>
<body>
<h1>{heading}</h1>
<p class="sub">{clip_facts}</p>
<div class="top">
<div class="watch">
<video id="heatmap" controls loop muted playsinline preload="auto"
 src="{_data_uri(files["video"], "video/mp4")}"></video>
<div class="controls"><button id="prev" type="button" title="previous frame">◀ frame</button>
<button id="next" type="button" title="next frame">frame ▶</button>
<label>speed <select id="speed"><option value="0.25">¼×</option><option value="0.5">½×</option>
<option value="1" selected>1×</option></select></label><span id="readout"></span></div>
{chart}
<p class="hint">Relevance of each frame (red: {red}; blue: {blue}). Click or drag on the chart
to show that frame in the video; the black line follows playback. Numbers above the bars: the
most relevant frames, shown below.</p>
</div>
<div class="panel">
<h2>Scores</h2>
{_scores_table(explanation)}
<p class="score-line">{_explained_score(explanation)}</p>
<div class="share"><p>{net}</p><p class="mass">{mass}</p></div>
<div class="legend"><span>{_number(-limit)}</span><span class="ramp"></span>
<span>{_number(limit)}</span></div>
<p class="hint">Heatmap colours: red, {red}; blue, {blue}; the same limits, symmetric about 0,
in the video and the frames (they saturate at the 99.5th percentile of |R|).</p>
</div>
</div>
<h2>Most relevant frames</h2>
<p class="hint">Click a frame to show it in the video.</p>
<div class="frames">{top_figures}</div>
<h2>Which features: {feature_list(by_feature)} on frame {best}</h2>
<div class="features">{feature_figures}</div>
<table class="scores" style="max-width:620px;margin-top:10px">
<tr><th>feature type</th><th>Σ relevance</th><th></th></tr>{feature_rows}</table>
{pyramid}
<h2>Details</h2>
<table class="details">
<tr><td>explained score</td><td>{_number(numbers["score"])}</td></tr>
<tr><td>relevance passed to the voxels</td><td>{_number(numbers["relevance_total"])}</td></tr>
<tr><td>{absorbed_label}</td><td>{_number(numbers["absorbed"])}</td></tr>
<tr><td>absorbed mass (both signs)</td><td>{_percents(numbers["absorbed_mass"])[0]}</td></tr>
<tr><td>{how_label}</td><td>{how}</td></tr>
<tr><td>most relevant frames</td><td>{", ".join(map(str, numbers["top_frames"]))}</td></tr>
{interval_row}
</table>
<script type="application/json" id="frame-data">{data_json}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
    report = out / "report.html"
    write_text_atomic(report, page)
    return report


# --------------------------------------------------------------------------------------------
# A whole dataset


def _features_of(shares: dict) -> list[str]:
    """The feature types of a dataset's per-class shares (HOF, MBHx, MBHy, HOG if described)."""
    return list(next(iter(shares.values()), {"hof": 0, "mbhx": 0, "mbhy": 0}))


def write_dataset_page(
    out: Path, data: dict, figures: dict, frame_figures: dict, localisation_keys: tuple = ()
) -> Path:
    """``out/report.html`` of a dataset's explanations (`report.explain_dataset`'s numbers)."""
    rows = []
    for r in data["clips"]:
        link = f'<a href="{html.escape(r["report"])}">report</a>' if "report" in r else ""
        loc = "".join(f"<td>{r[k]:.2f}</td>" if k in r else "<td></td>" for k in localisation_keys)
        rows.append(
            f"<tr><td>{html.escape(Path(r['clip']).name)}</td><td>{html.escape(r['true'])}</td>"
            f"<td>{html.escape(r['predicted'])}</td><td>{r['score']:.3g}</td>{loc}<td>{link}</td>"
            "</tr>"
        )
    means = "".join(
        f"<li>{k.replace('_', ' ')}: {data[k]:.3f}</li>" for k in localisation_keys if k in data
    )
    classes = "".join(
        f'<h3>{html.escape(c)}</h3><img alt="top frames {html.escape(c)}" '
        f'src="{_data_uri(p, "image/png")}">'
        for c, p in frame_figures.items()
    )
    features = feature_list(_features_of(data["feature_shares"]))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>actionlrp: dataset explanation</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
img{{max-width:100%;border:1px solid #ddd}} td,th{{padding:2px 8px;text-align:left}}</style>
</head><body>
<h1>What the model looks at, class by class</h1>
<p>{data["n_clips"]} clips explained ({data["n_failed"]} failed), accuracy {data["accuracy"]:.3f}.
Red: evidence for the predicted class; blue: against.
Relevance by the {rule_text(data["rule"])}.</p>
<ul>{means}</ul>
<h2>Share of {features} over the true positives of each class</h2>
<img alt="feature shares by class" src="{_data_uri(figures["shares"], "image/png")}">
<h2>The most relevant frames of each class</h2>
{classes}
<h2>Every clip</h2>
<table><tr><th>clip</th><th>true</th><th>predicted</th><th>score</th><th>mass on actor</th>
<th>within 16 px</th><th>pointing game</th><th>top frames in action</th><th></th></tr>
{"".join(rows)}
</table>
</body></html>
"""
    report = out / "report.html"
    write_text_atomic(report, page)
    return report
