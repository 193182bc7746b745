"""Draw explanations (design §6): heatmap video, frame-relevance curve, feature shares,
per-feature heatmaps, top frames, a self-contained HTML report and a JSON summary; and the page
of a whole dataset's explanations (`actionlrp.report` runs them).

Colours: red for relevance *for* the class, blue *against*, with limits symmetric about 0.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import av
import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from actionlrp.relevance import Explanation  # noqa: E402
from actionlrp.video import MotionField, open_video  # noqa: E402

FEATURE_NAMES = {"hof": "HOF", "mbhx": "MBHx", "mbhy": "MBHy"}


def diverging_colours(values: np.ndarray, limit: float) -> np.ndarray:
    """Map relevance to RGB (uint8): blue (−limit) … white (0) … red (+limit).

    Parameters
    ----------
    values : ndarray, shape (...)
    limit : float
        The symmetric colour limit; values beyond it saturate.

    Returns
    -------
    ndarray, shape (..., 3), uint8
    """
    x = np.clip(values / max(limit, 1e-30), -1.0, 1.0).astype(np.float32)
    pos, neg = np.clip(x, 0, 1), np.clip(-x, 0, 1)
    rgb = np.empty(x.shape + (3,), np.float32)
    rgb[..., 0] = 1.0 - neg  # red channel: full unless negative
    rgb[..., 1] = 1.0 - pos - neg
    rgb[..., 2] = 1.0 - pos  # blue channel: full unless positive
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _limit(relevance: np.ndarray) -> float:
    """Symmetric colour limit: the 99.5th percentile of |R| (robust to a few extreme voxels)."""
    magnitude = np.abs(relevance)
    return float(np.percentile(magnitude, 99.5)) if magnitude.any() else 1.0


def overlay(
    frame_rgb: np.ndarray, heat: np.ndarray, limit: float, cell: int, alpha: float = 0.6
) -> np.ndarray:
    """Blend a (gh, gw) relevance map of ``cell``-px cells over an RGB frame (H, W, 3).

    Alpha grows with |R|, so irrelevant regions show the frame unchanged.
    """
    h, w = frame_rgb.shape[:2]
    gh, gw = heat.shape
    big = cv2.resize(
        heat.astype(np.float32), (gw * cell, gh * cell), interpolation=cv2.INTER_LINEAR
    )
    big = big[:h, :w]
    colours = diverging_colours(big, limit).astype(np.float32)
    weight = (alpha * np.clip(np.abs(big) / max(limit, 1e-30), 0, 1))[..., None]
    return (frame_rgb[: big.shape[0], : big.shape[1]] * (1 - weight) + colours * weight).astype(
        np.uint8
    )


def write_heatmap_video(
    video: str | os.PathLike,
    explanation: Explanation,
    field: MotionField,
    out: str | os.PathLike,
    arrows: bool = False,
    alpha: float = 0.6,
) -> Path:
    """The clip with R(1) over every frame, as H.264 MP4 (written atomically).

    Parameters
    ----------
    video : path-like
        The explained clip (decoded again for its pixels).
    explanation : Explanation
    field : MotionField
        The clip's motion field; with ``arrows`` its vectors are drawn on the frames.
    out : path-like
        The ``.mp4`` to write.
    """
    out = Path(out)
    tmp = out.with_name(f".{out.name}.part.mp4")
    r1 = explanation.relevance_voxels
    limit = _limit(r1)
    width, height = field.width - field.width % 2, field.height - field.height % 2
    try:
        with open_video(video) as (container, stream), av.open(str(tmp), "w") as sink:
            rate = stream.average_rate or stream.guessed_rate or 25
            enc = sink.add_stream("libx264", rate=rate)
            enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
            enc.options = {"crf": "23", "preset": "veryfast"}
            for t, frame in enumerate(container.decode(stream)):
                if t >= r1.shape[0]:
                    break
                rgb = frame.to_ndarray(format="rgb24")[:height, :width]
                image = overlay(rgb, r1[t], limit, field.cell, alpha)
                if arrows:
                    _draw_arrows(image, field.flow[t], field.cell)
                sink.mux(enc.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            sink.mux(enc.encode(None))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _draw_arrows(image: np.ndarray, flow: np.ndarray, cell: int, step: int = 2) -> None:
    """Motion vectors as arrows (scaled ×3) on every ``step``-th grid cell, in place."""
    sub = flow[::step, ::step].reshape(-1, 2).astype(np.float32)
    ys, xs = np.mgrid[0 : flow.shape[0] : step, 0 : flow.shape[1] : step]
    start = np.stack([xs.ravel(), ys.ravel()], axis=1) * cell + cell // 2
    keep = (sub**2).sum(axis=1) >= 0.25
    if not keep.any():
        return
    start, shaft = start[keep].astype(np.float32), 3.0 * sub[keep]
    tip = start + shaft
    head = -0.3 * shaft  # two barbs: the shaft reversed, turned by ±30°
    cos, sin = np.float32(np.cos(np.pi / 6)), np.float32(np.sin(np.pi / 6))
    barbs = [
        np.stack(
            [
                head[:, 0] * cos - sign * head[:, 1] * sin,
                sign * head[:, 0] * sin + head[:, 1] * cos,
            ],
            1,
        )
        for sign in (1.0, -1.0)
    ]
    segments = np.concatenate(
        [np.stack([start, tip], 1)] + [np.stack([tip, tip + b], 1) for b in barbs]
    )
    cv2.polylines(image, np.rint(segments).astype(np.int32), False, (255, 255, 0), 1)


# --------------------------------------------------------------------------------------------
# Figures


def plot_frame_relevance(explanation: Explanation, out: Path, interval=None) -> Path:
    """The relevance of each frame over time (the paper's Fig. 6)."""
    r = explanation.frame_relevance
    fig, ax = plt.subplots(figsize=(7, 2.6), dpi=100)
    colours = np.where(r >= 0, "#c0392b", "#2c7bb6")
    ax.bar(np.arange(len(r)), r, color=colours, width=1.0)
    if interval is not None:
        ax.axvspan(
            interval[0] - 0.5,
            interval[1] - 0.5,
            color="#f1c40f",
            alpha=0.2,
            label="action interval",
        )
        ax.legend(loc="upper right", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("frame")
    ax.set_ylabel("relevance $r_t$")
    ax.set_title(f"frame relevance for '{explanation.class_name}'", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_feature_shares(explanation: Explanation, out: Path) -> Path:
    """Σ R(2) of HOF, MBHx and MBHy (the paper's Fig. 5)."""
    names = list(explanation.feature_relevance)
    values = [explanation.feature_relevance[f] for f in names]
    fig, ax = plt.subplots(figsize=(3.6, 2.6), dpi=100)
    ax.bar(
        [FEATURE_NAMES.get(f, f) for f in names],
        values,
        color=["#c0392b" if v >= 0 else "#2c7bb6" for v in values],
    )
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("relevance")
    ax.set_title("feature types", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def _decode_frames(video: str | os.PathLike, wanted: set[int]) -> dict[int, np.ndarray]:
    frames = {}
    with open_video(video) as (container, stream):
        for t, frame in enumerate(container.decode(stream)):
            if t in wanted:
                frames[t] = frame.to_ndarray(format="rgb24")
            if t >= max(wanted):
                break
    return frames


def plot_top_frames(
    video: str | os.PathLike, explanation: Explanation, out: Path, cell: int = 8, k: int = 4
) -> Path:
    """The k most relevant frames with their heatmaps (the paper's Fig. 3)."""
    top = [int(t) for t in explanation.top_frames(k)]
    frames = _decode_frames(video, set(top))
    limit = _limit(explanation.relevance_voxels)
    panels = [
        (
            frames.get(t),
            explanation.relevance_voxels[t],
            limit,
            f"frame {t}: $r_t$ = {explanation.frame_relevance[t]:.3g}",
        )
        for t in top
    ]
    return _overlay_row(panels, cell, out)


def _overlay_row(panels: list[tuple], cell: int, out: Path, fontsize: int = 9) -> Path:
    """One row of heatmap overlays, ``(rgb or None, heat (gh, gw), limit, title)`` each."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 2.6), dpi=100, squeeze=False)
    for ax, (rgb, heat, limit, title) in zip(axes[0], panels, strict=True):
        if rgb is not None:
            ax.imshow(overlay(rgb, heat, limit, cell))
        ax.set_title(title, fontsize=fontsize)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_feature_heatmaps(
    video: str | os.PathLike,
    explanation: Explanation,
    out: Path,
    cell: int = 8,
    frame: int | None = None,
) -> Path:
    """HOF, MBHx and MBHy relevance of one frame side by side (the paper's Fig. 4)."""
    t = int(explanation.top_frames(1)[0]) if frame is None else frame
    rgb = _decode_frames(video, {t}).get(t)
    maps = explanation.relevance_voxels_by_feature
    limit = max(_limit(m[t]) for m in maps.values())
    panels = [(rgb, m[t], limit, f"{FEATURE_NAMES.get(f, f)}, frame {t}") for f, m in maps.items()]
    return _overlay_row(panels, cell, out)


# --------------------------------------------------------------------------------------------
# Summary and report


def summary(explanation: Explanation, top_k: int = 5) -> dict:
    """The numbers of an explanation, JSON-ready (``summary.json``)."""
    return {
        "class": explanation.class_name,
        "versus": explanation.versus,
        "score": explanation.score,
        "scores": dict(explanation.scores),
        "relevance_total": explanation.relevance_total,
        "absorbed": explanation.absorbed,
        "absorbed_mass": explanation.absorbed_mass,
        "rule": explanation.rule.summary(),
        "frame_relevance": [float(v) for v in explanation.frame_relevance],
        "feature_relevance": {f: float(v) for f, v in explanation.feature_relevance.items()},
        "top_frames": [int(t) for t in explanation.top_frames(top_k)],
    }


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def write_report(
    explanation: Explanation,
    out_dir: str | os.PathLike,
    interval: tuple[int, int] | None = None,
    title: str | None = None,
) -> Path:
    """Write every view of one explanation to ``out_dir``; return ``out_dir/report.html``.

    The folder gets ``heatmap.mp4``, ``frame_relevance.png``, ``feature_shares.png``,
    ``top_frames.png``, ``feature_heatmaps.png``, ``summary.json`` and ``report.html``, which
    embeds all of them (data URIs), so it can be opened or sent on its own.

    Parameters
    ----------
    explanation : Explanation
        With the clip's file and motion field (as `ActionModel.explain` gives it).
    out_dir : path-like
    interval : (int, int), optional
        Frames ``[start, stop)`` of the action, shaded on the frame curve.
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
    files = {
        "video": write_heatmap_video(video, explanation, field, out / "heatmap.mp4"),
        "curve": plot_frame_relevance(explanation, out / "frame_relevance.png", interval),
        "shares": plot_feature_shares(explanation, out / "feature_shares.png"),
        "top": plot_top_frames(video, explanation, out / "top_frames.png", field.cell),
        "features": plot_feature_heatmaps(
            video, explanation, out / "feature_heatmaps.png", field.cell
        ),
    }
    numbers = summary(explanation)
    (out / "summary.json").write_text(json.dumps(numbers, indent=2))
    name = html.escape(title or Path(video).name)
    shares = ", ".join(
        f"{FEATURE_NAMES.get(f, f)} {v:+.3g}" for f, v in numbers["feature_relevance"].items()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>actionlrp: {name}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}
img,video{{max-width:100%;border:1px solid #ddd}} video{{width:640px}}
td{{padding:2px 10px}}</style></head>
<body>
<h1>Why <em>{html.escape(numbers["class"])}</em>? — {name}</h1>
<table>
<tr><td>class</td><td>{html.escape(numbers["class"])}</td></tr>
<tr><td>score f<sub>c</sub>(x)</td><td>{numbers["score"]:.4g}</td></tr>
<tr><td>relevance passed to the voxels</td><td>{numbers["relevance_total"]:.4g}</td></tr>
<tr><td>absorbed by ε = {explanation.rule.epsilon:g}</td><td>{numbers["absorbed"]:.4g}</td></tr>
<tr><td>rule</td><td>{html.escape(rule_text(numbers["rule"]))}</td></tr>
<tr><td>feature types</td><td>{shares}</td></tr>
<tr><td>most relevant frames</td><td>{numbers["top_frames"]}</td></tr>
</table>
<h2>Heatmap over the clip</h2>
<p>Red: evidence for the class; blue: against. Limits are symmetric about 0.</p>
<video id="heatmap" controls loop muted src="{_data_uri(files["video"], "video/mp4")}"></video>
<h2>Relevance of each frame</h2>
<img alt="frame relevance" src="{_data_uri(files["curve"], "image/png")}">
<h2>Most relevant frames</h2>
<img alt="top frames" src="{_data_uri(files["top"], "image/png")}">
<h2>HOF, MBHx and MBHy on the most relevant frame</h2>
<img alt="feature heatmaps" src="{_data_uri(files["features"], "image/png")}">
<h2>Share of each feature type</h2>
<img alt="feature shares" src="{_data_uri(files["shares"], "image/png")}">
</body></html>
"""
    report = out / "report.html"
    report.write_text(page)
    return report


# --------------------------------------------------------------------------------------------
# A whole dataset


def plot_class_shares(shares: dict, out: Path) -> Path:
    classes = list(shares)
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(classes)), 2.8), dpi=100)
    width = 0.27
    for i, (f, colour) in enumerate(
        zip(FEATURE_NAMES, ("#c0392b", "#27ae60", "#2c7bb6"), strict=True)
    ):
        values = [shares[c][f] for c in classes]
        ax.bar(
            np.arange(len(classes)) + (i - 1) * width,
            values,
            width,
            label=FEATURE_NAMES[f],
            color=colour,
        )
    ax.set_xticks(np.arange(len(classes)), classes, rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("Σ relevance (true positives)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_best_frames(best: list, out: Path) -> Path:
    panels = [
        (_decode_frames(path, {t}).get(t), heat, limit, f"{Path(path).name} frame {t}")
        for _, path, t, heat, limit, _ in best
    ]
    return _overlay_row(panels, best[0][5], out, fontsize=8)


def rule_text(rule: dict) -> str:
    """One line that says what a rule (`Rule.summary`) does."""
    if rule["histogram"] == "bins":
        spread = "through the histogram bins to the vectors"
    else:
        spread = "evenly over each cube"
    root = ", measured from no motion" if rule["root"] == "still" else ""
    unit = " × the clip's mean |Ψ|" if rule["epsilon_unit"] == "relative" else ""
    return f"rule {rule['name']}: ε = {rule['epsilon']:g}{unit}, {spread}{root}"


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
<h2>Share of HOF, MBHx and MBHy over the true positives of each class</h2>
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
    report.write_text(page)
    return report
