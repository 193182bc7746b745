"""Draw explanations (design §6): heatmap video, frame-relevance curve, feature shares,
per-feature heatmaps and top frames of one clip, and the figures of a whole dataset's
explanations; `actionlrp.pages` puts them into the HTML pages (`actionlrp.report` runs them).

Colours: red for relevance *for* the class, blue *against*, with limits symmetric about 0.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from actionlrp.atomic import atomic_file  # noqa: E402
from actionlrp.relevance import Explanation  # noqa: E402
from actionlrp.video import MotionField, open_video  # noqa: E402

FEATURE_NAMES = {"hof": "HOF", "mbhx": "MBHx", "mbhy": "MBHy", "hog": "HOG"}
FEATURE_COLOURS = {"hof": "#c0392b", "mbhx": "#27ae60", "mbhy": "#2c7bb6", "hog": "#8e6c3a"}


def feature_list(features) -> str:
    """The feature types' names in words: ``"HOF, MBHx and MBHy"``."""
    names = [FEATURE_NAMES.get(f, f) for f in features]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


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


def colour_limit(relevance: np.ndarray) -> float:
    """Symmetric colour limit: the 99.5th percentile of |R| (robust to a few extreme voxels)."""
    magnitude = np.abs(relevance)
    return float(np.percentile(magnitude, 99.5)) if magnitude.any() else 1.0


def overlay(
    frame_rgb: np.ndarray, heat: np.ndarray, limit: float, cell: int, alpha: float = 0.6
) -> np.ndarray:
    """Blend a (gh, gw) relevance map of ``cell``-px cells over an RGB frame (H, W, 3).

    Alpha grows with |R|, so irrelevant regions show the frame unchanged.
    """
    big = _heat_pixels(heat, cell, frame_rgb.shape[:2])
    return _blend(frame_rgb[: big.shape[0], : big.shape[1]], big, limit, alpha)


def _heat_pixels(heat: np.ndarray, cell: int, size: tuple[int, int]) -> np.ndarray:
    """A (gh, gw) map of ``cell``-px cells spread over the pixels of a ``size`` = (h, w) frame."""
    gh, gw = heat.shape
    big = cv2.resize(
        heat.astype(np.float32), (gw * cell, gh * cell), interpolation=cv2.INTER_LINEAR
    )
    return big[: size[0], : size[1]]


def _blend(rgb: np.ndarray, heat: np.ndarray, limit: float, alpha: float) -> np.ndarray:
    """Heat (h, w) over RGB (h, w, 3): alpha grows with |R|."""
    colours = diverging_colours(heat, limit).astype(np.float32)
    weight = (alpha * np.clip(np.abs(heat) / max(limit, 1e-30), 0, 1))[..., None]
    return (rgb * (1 - weight) + colours * weight).astype(np.uint8)


def overlay_at_width(
    frame_rgb: np.ndarray,
    heat: np.ndarray,
    limit: float,
    cell: int,
    width: int = 640,
    alpha: float = 0.6,
) -> np.ndarray:
    """`overlay` resized to ``width`` px wide (aspect kept): small clips are upsampled before
    the heat is blended in, so the heat stays smooth and a person stays visible."""
    big = _heat_pixels(heat, cell, frame_rgb.shape[:2])
    h, w = big.shape
    height = max(1, round(h * width / w))
    grow = width >= w
    rgb = cv2.resize(
        np.ascontiguousarray(frame_rgb[:h, :w]),
        (width, height),
        interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA,
    )
    big = cv2.resize(
        big, (width, height), interpolation=cv2.INTER_LINEAR if grow else cv2.INTER_AREA
    )
    return _blend(rgb, big, limit, alpha)


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
    limit = colour_limit(r1)
    width, height = field.width - field.width % 2, field.height - field.height % 2
    # Frame t plays at the field's timestamp t (from the first), the time the report seeks to.
    pts = np.rint(frame_times(field, r1.shape[0])[0] * _TICKS).astype(np.int64)
    try:
        with open_video(video) as (container, stream), av.open(str(tmp), "w") as sink:
            rate = stream.average_rate or stream.guessed_rate or 25
            enc = sink.add_stream("libx264", rate=rate)
            enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
            enc.codec_context.time_base = Fraction(1, _TICKS)
            enc.options = {"crf": "23", "preset": "veryfast"}
            for t, frame in enumerate(container.decode(stream)):
                if t >= r1.shape[0]:
                    break
                rgb = frame.to_ndarray(format="rgb24")[:height, :width]
                image = overlay(rgb, r1[t], limit, field.cell, alpha)
                if arrows:
                    _draw_arrows(image, field.flow[t], field.cell)
                picture = av.VideoFrame.from_ndarray(image, format="rgb24")
                picture.pts, picture.time_base = int(pts[t]), Fraction(1, _TICKS)
                sink.mux(enc.encode(picture))
            sink.mux(enc.encode(None))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


_TICKS = 90_000  # the heatmap video's time base, 1/90000 s


def frame_times(field: MotionField, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """When each of the first ``n`` frames starts, from the first frame, and how long it lasts.

    The field's timestamps where they increase frame by frame at the resolution of the heatmap
    video's time base, else frame t at t / fps.

    Returns
    -------
    start, duration : ndarray, shape (n,), float64
        Seconds.
    """
    n = field.n_frames if n is None else n
    fps = field.fps if field.fps > 0 else 25.0
    times = np.asarray(field.timestamps, dtype=np.float64)[:n]
    start = times - times[0] if len(times) == n and n else np.arange(n) / fps
    if n > 1 and not (np.diff(np.rint(start * _TICKS)) > 0).all():
        start = np.arange(n) / fps
    duration = np.append(np.diff(start), 1.0 / fps) if n else start
    return start, duration


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


def _save(fig, out: Path) -> None:
    """``fig.savefig(out)``, whole or not at all (the format from ``out``'s suffix)."""
    with atomic_file(out) as tmp:
        fig.savefig(tmp, format=Path(out).suffix.lstrip(".") or None)


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
    _save(fig, out)
    plt.close(fig)
    return out


def plot_feature_shares(explanation: Explanation, out: Path) -> Path:
    """Σ R(2) of HOF, MBHx and MBHy (and HOG) (the paper's Fig. 5)."""
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
    _save(fig, out)
    plt.close(fig)
    return out


def _decode_frames(video: str | os.PathLike, wanted: set[int]) -> dict[int, np.ndarray]:
    frames = {}
    if not wanted:
        return frames
    with open_video(video) as (container, stream):
        for t, frame in enumerate(container.decode(stream)):
            if t in wanted:
                frames[t] = frame.to_ndarray(format="rgb24")
            if t >= max(wanted):
                break
    return frames


def plot_top_frames(
    video: str | os.PathLike,
    explanation: Explanation,
    out: Path,
    cell: int = 8,
    k: int = 4,
    frames: dict[int, np.ndarray] | None = None,
) -> Path:
    """The k most relevant frames with their heatmaps (the paper's Fig. 3); ``frames``: RGB
    frames by index already decoded from ``video``."""
    top = [int(t) for t in explanation.top_frames(k)]
    if frames is None or not set(top) <= set(frames):
        frames = _decode_frames(video, set(top))
    limit = colour_limit(explanation.relevance_voxels)
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
    _save(fig, out)
    plt.close(fig)
    return out


def plot_feature_heatmaps(
    video: str | os.PathLike,
    explanation: Explanation,
    out: Path,
    cell: int = 8,
    frame: int | None = None,
    frames: dict[int, np.ndarray] | None = None,
) -> Path:
    """HOF, MBHx and MBHy (and HOG) relevance of one frame side by side (the paper's Fig. 4);
    ``frames``: RGB frames by index already decoded from ``video``."""
    t = int(explanation.top_frames(1)[0]) if frame is None else frame
    rgb = frames[t] if frames is not None and t in frames else _decode_frames(video, {t}).get(t)
    maps = explanation.relevance_voxels_by_feature
    limit = max(colour_limit(m[t]) for m in maps.values())
    panels = [(rgb, m[t], limit, f"{FEATURE_NAMES.get(f, f)}, frame {t}") for f, m in maps.items()]
    return _overlay_row(panels, cell, out)


# --------------------------------------------------------------------------------------------
# A whole dataset


def plot_class_shares(shares: dict, out: Path) -> Path:
    classes = list(shares)
    features = list(shares[classes[0]]) if classes else []
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(classes)), 2.8), dpi=100)
    width = 0.8 / max(len(features), 1)
    for i, f in enumerate(features):
        values = [shares[c][f] for c in classes]
        ax.bar(
            np.arange(len(classes)) + (i - (len(features) - 1) / 2) * width,
            values,
            width,
            label=FEATURE_NAMES.get(f, f),
            color=FEATURE_COLOURS.get(f),
        )
    ax.set_xticks(np.arange(len(classes)), classes, rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("Σ relevance (true positives)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
    return out


def plot_best_frames(best: list, out: Path) -> Path:
    panels = [
        (_decode_frames(path, {t}).get(t), heat, limit, f"{Path(path).name} frame {t}")
        for _, path, t, heat, limit, _ in best
    ]
    return _overlay_row(panels, best[0][5], out, fontsize=8)
