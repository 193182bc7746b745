"""Whether an explanation stays put when the clip is re-encoded.

Every held-out clip of fight-dev (group 5-fold) and ut-interaction-set1 (leave one sequence
out), explained by the model of the fold that held it out (``real_folds.py``), is re-encoded
with PyAV in a temporary folder, twice, with the same frames, frame count, size and frame rate
(pts set explicitly, one per frame; a variant whose decoded frame count differs from the
source's is skipped with a note):

* ``codec``: H.264 (libx264) ↔ MPEG-4 Part 2 (mpeg4), at about the source's bitrate;
* ``bitrate/4``: the source's codec at a quarter of its bitrate.

The source's bitrate is its video packets' bytes × 8 / duration (frames / fps): the file size
would count the audio track most fight-dev clips carry. H.264 goes into MP4, MPEG-4 Part 2
into AVI (as in the sources and `codec.transcode_to_mpeg4`). Only the codec or the bitrate
changes, not the picture structure: B-frames iff the source has any (libx264 up to 3, mpeg4 up
to 2), and an I-frame every 250 frames at most (the sources have one, at the start; mpeg4's
own default of 12 would add an I-frame, which carries no vectors, every 12 frames).

The original is explained for its predicted class; a variant is kept only when the model
predicts the same class for it (an explanation should stay put when the prediction does: the
table says how many kept it), and is explained for that same class, with each rule. Per
(original, variant) pair: the Spearman correlation of ``frame_relevance`` and the Pearson
correlation of ``relevance_voxels`` summed over 16 px × 5-frame cells (2 × 2 grid cells × 5
frames; partial cells at the right, bottom and end are dropped). Targets: median Spearman
≥ 0.8, median Pearson ≥ 0.6, over both sets together. The rows ``motion |v| (input)`` give the
same two figures for the speed of the motion field itself (the input LRP explains, over the
same pairs): how much of the change is already in the vectors the codec chose.

Every clip is re-encoded at its own size. The whole run (160 clips, two rules) took 13
minutes on two busy cores, 5 of them on fight-dev's 19 clips wider than 640 px (704×480 up to
1920×1080): ``--max-width 640`` leaves those out for a quicker look.

    python benchmarks/bench_stability.py                      # both real sets, fine and paper
    python benchmarks/bench_stability.py --limit 1 --rules fine --sets ut-interaction-set1
    python benchmarks/bench_stability.py --max-width 640 --json out/bench_stability.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from real_folds import FOLDS, folds
from scipy.stats import spearmanr

import actionlrp  # noqa: F401 — sets OpenBLAS's thread timeout before numpy loads
from actionlrp.descriptors import describe
from actionlrp.errors import ActionLRPError
from actionlrp.model import ActionModel
from actionlrp.motion import motion_field
from actionlrp.relevance import Explanation, explain
from actionlrp.rules import RULES
from actionlrp.video import MotionField, open_video

VARIANTS = ("codec", "bitrate/4")
TARGETS = {"spearman": 0.8, "pearson": 0.6}
GOP = 250  # longest run between I-frames in a re-encoding (x264's default)
CELL_PX, CELL_FRAMES = 16, 5
INPUT = "motion |v| (input)"  # the same figures for the motion field's speed, for reference
#: Encoder and container of each source codec; the other codec of the pair.
ENCODERS = {"h264": ("libx264", ".mp4"), "mpeg4": ("mpeg4", ".avi")}
OTHER = {"h264": "mpeg4", "mpeg4": "h264"}
B_FRAMES = {"libx264": 3, "mpeg4": 2}
#: /proc/cpuinfo's name → x264's name of each instruction set below AVX-512.
_X264_CPU = {
    "sse": "SSE",
    "sse2": "SSE2",
    "pni": "SSE3",
    "ssse3": "SSSE3",
    "sse4_1": "SSE4.1",
    "sse4_2": "SSE4.2",
    "abm": "LZCNT",
    "avx": "AVX",
    "fma": "FMA3",
    "bmi1": "BMI1",
    "bmi2": "BMI2",
    "avx2": "AVX2",
}
_B_PICTURE = 3  # AVPictureType AV_PICTURE_TYPE_B


def probe(path: Path) -> dict:
    """Codec, size, frame rate, decoded frame count, B-frames and video bitrate of a clip."""
    with open_video(path) as (container, stream):
        ctx = stream.codec_context
        fps = Fraction(stream.average_rate or stream.guessed_rate or 25)
        n = size = 0
        b_frames = False
        for packet in container.demux(stream):
            size += packet.size
            for frame in packet.decode():
                n += 1
                b_frames |= int(frame.pict_type) == _B_PICTURE
        return {
            "codec": ctx.name,
            "width": ctx.width,
            "height": ctx.height,
            "fps": fps,
            "frames": n,
            "b_frames": b_frames,
            "bit_rate": int(size * 8 * fps / max(n, 1)),
        }


def _decode_serially(path: Path):
    """The decoded frames of ``path``, decoded on this thread only."""
    with open_video(path) as (container, stream):
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        yield from container.decode(stream)


def _x264_options() -> dict[str, str]:
    """libx264's options: on a CPU with AVX-512, the instruction sets below it only.

    libx264's AVX-512 code (as PyAV ships it) wrote a different stream for the same frames
    and settings from one run to the next on this project's AMD EPYC machine (the
    instruction sets below it, or none, are repeatable), so the table moved between identical
    runs. Elsewhere libx264 picks for itself."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    flags = set(line.partition(":")[2].split())
    if "avx512f" not in flags:
        return {}
    return {"x264-params": "asm=" + ",".join(v for k, v in _X264_CPU.items() if k in flags)}


def reencode(src: Path, dst: Path, info: dict, codec: str, bit_rate: int) -> int:
    """Write every decoded frame of ``src`` to ``dst`` with ``codec`` (a key of `ENCODERS`) at
    ``bit_rate``, same size and fps, pts 0, 1, 2, …; returns the frames decoded from ``dst``.

    Runs in a process of its own (`run`'s encoder pool), on one thread, while the main process
    explains: the encoding costs little more than a core's share of the wall time."""
    name = ENCODERS[codec][0]
    rate = info["fps"]
    with av.open(str(dst), "w") as out:
        enc = out.add_stream(name, rate=rate, options=_x264_options() if name == "libx264" else {})
        enc.width, enc.height, enc.pix_fmt = info["width"], info["height"], "yuv420p"
        enc.bit_rate = bit_rate
        enc.codec_context.time_base = 1 / rate
        enc.codec_context.gop_size = GOP
        enc.codec_context.max_b_frames = B_FRAMES[name] if info["b_frames"] else 0
        enc.codec_context.thread_count = 1
        for i, frame in enumerate(_decode_serially(src)):
            picture = frame.reformat(info["width"], info["height"], "yuv420p")
            picture.pts, picture.time_base = i, 1 / rate
            picture.pict_type = 0  # let the encoder choose the picture type
            out.mux(enc.encode(picture))
        out.mux(enc.encode(None))
    return sum(1 for _ in _decode_serially(dst))


def cells(voxels: np.ndarray) -> np.ndarray:
    """A map on the 8-px grid (T, gh, gw), e.g. ``relevance_voxels``, summed over 16 px ×
    5-frame cells (whole cells only), flattened."""
    t, gh, gw = voxels.shape
    k = CELL_PX // 8
    t, gh, gw = t // CELL_FRAMES, gh // k, gw // k
    v = voxels[: t * CELL_FRAMES, : gh * k, : gw * k]
    return v.reshape(t, CELL_FRAMES, gh, k, gw, k).sum(axis=(1, 3, 5)).ravel()


def correlations(
    frames_a: np.ndarray, frames_b: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[float, float]:
    """Spearman of two per-frame series (T,), Pearson of two (T, gh, gw) maps summed over
    `cells` (NaN where one side is constant)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        rho = float(spearmanr(frames_a, frames_b).statistic)
        x, y = cells(a), cells(b)
        r = float(np.corrcoef(x, y)[0, 1]) if x.size > 1 and x.std() and y.std() else np.nan
    return rho, r


def _encode_job(src: Path, dst: Path, info: dict, codec: str, bit_rate: int) -> int | str:
    """`reencode` in the encoder process: the decoded frame count, or why it failed."""
    try:
        return reencode(src, dst, info, codec, bit_rate)
    except (ActionLRPError, av.error.FFmpegError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


@dataclass
class _Original:
    """A held-out clip explained: its probe, field, speed, class and explanation per rule."""

    dataset: str
    name: str
    info: dict
    field: MotionField
    speed: np.ndarray
    label: str
    explanations: dict[str, Explanation]


def _note(notes: list[str], text: str) -> None:
    notes.append(text)
    print(text, file=sys.stderr)


def _compare(
    model: ActionModel,
    rules: list[str],
    o: _Original,
    variant: str,
    encoding: tuple[Path, int, Future],
    rows: dict,
    notes: list[str],
) -> str:
    """Explain a variant (its file, target bitrate and encoder job) for ``o``'s class and add
    its correlations to ``rows``; returns a word for the progress line."""
    dst, target, job = encoding
    row = rows[variant]
    frames = job.result()
    if isinstance(frames, str):
        _note(notes, f"{o.dataset} {o.name} {variant}: skipped ({frames})")
        return f"{variant} skipped"
    if frames != o.info["frames"]:
        _note(
            notes,
            f"{o.dataset} {o.name} {variant}: skipped, {frames} frames decoded instead of "
            f"{o.info['frames']}",
        )
        return f"{variant} skipped"
    ratio = dst.stat().st_size * 8 * o.info["fps"] / frames / target
    try:
        field = motion_field(dst, model.motion, model.cell, hog=model.params_.hog)
        if field.flow.shape != o.field.flow.shape:
            _note(
                notes,
                f"{o.dataset} {o.name} {variant}: skipped, motion field {field.flow.shape[:3]} "
                f"≠ {o.field.flow.shape[:3]}",
            )
            return f"{variant} skipped"
        desc = describe(field, model.params_)
        first = explain(model, field, desc, o.label, rules[0])
    except ActionLRPError as exc:
        _note(notes, f"{o.dataset} {o.name} {variant}: skipped ({exc})")
        return f"{variant} skipped"
    row["variants"] += 1
    row["rate_ratio"].append(float(ratio))
    predicted = max(first.scores, key=first.scores.get)
    if predicted != o.label:
        row["changed"].append(f"{o.name}: {o.label} → {predicted}")
        return f"{variant} → {predicted}"
    row["kept"] += 1
    speed = np.linalg.norm(field.flow, axis=-1)
    rho, r = correlations(o.speed.sum(axis=(1, 2)), speed.sum(axis=(1, 2)), o.speed, speed)
    row["motion"].append({"clip": o.name, "spearman": rho, "pearson": r})
    for rule in rules:
        a = o.explanations[rule]
        b = first if rule == rules[0] else explain(model, field, desc, o.label, rule)
        rho, r = correlations(
            a.frame_relevance, b.frame_relevance, a.relevance_voxels, b.relevance_voxels
        )
        row["rules"][rule].append({"clip": o.name, "spearman": rho, "pearson": r})
    return f"{variant} ρ {row['rules'][rules[0]][-1]['spearman']:.2f}"


def run_set(
    dataset: str,
    rules: list[str],
    limit: int | None,
    max_width: int | None,
    tmp: Path,
    encoder: ProcessPoolExecutor,
) -> dict:
    """Clip counts, notes, and per variant: kept predictions, achieved bitrates, and the
    correlations of every pair (per rule, and of the motion field's speed)."""
    rows = {
        v: {
            "variants": 0,
            "kept": 0,
            "changed": [],
            "rate_ratio": [],
            "motion": [],
            "rules": {r: [] for r in rules},
        }
        for v in VARIANTS
    }
    notes: list[str] = []
    n = left_out = 0
    for k, model, clips in folds(dataset):
        taken = 0
        for clip in clips:
            if limit is not None and taken >= limit:
                break
            name = Path(clip.path).name
            start = time.perf_counter()
            try:
                info = probe(clip.path)
            except ActionLRPError as exc:
                _note(notes, f"{dataset} {name}: skipped ({exc})")
                continue
            if info["codec"] not in ENCODERS:
                _note(notes, f"{dataset} {name}: skipped, codec {info['codec']}")
                continue
            if max_width is not None and info["width"] > max_width:
                left_out += 1
                continue
            taken += 1
            # Both re-encodings run in the encoder process while the original is explained here.
            jobs = {}
            for variant in VARIANTS:
                codec = OTHER[info["codec"]] if variant == "codec" else info["codec"]
                rate = info["bit_rate"] // (4 if variant == "bitrate/4" else 1)
                dst = tmp / f"{Path(name).stem}-{variant[:5]}{ENCODERS[codec][1]}"
                job = encoder.submit(_encode_job, clip.path, dst, info, codec, rate)
                jobs[variant] = (dst, rate, job)
            said = []
            try:
                field = motion_field(clip.path, model.motion, model.cell, hog=model.params_.hog)
                desc = describe(field, model.params_)
                first = explain(model, field, desc, rule=rules[0])
                label = first.class_name
                explanations = {r: explain(model, field, desc, label, r) for r in rules[1:]}
                original = _Original(
                    dataset,
                    name,
                    info,
                    field,
                    np.linalg.norm(field.flow, axis=-1),
                    label,
                    {rules[0]: first, **explanations},
                )
            except ActionLRPError as exc:
                _note(notes, f"{dataset} {name}: skipped ({exc})")
                original = None
            else:
                n += 1
            for variant, (dst, rate, job) in jobs.items():
                try:
                    if original is None:
                        job.result()
                    else:
                        said.append(
                            _compare(model, rules, original, variant, (dst, rate, job), rows, notes)
                        )
                finally:
                    dst.unlink(missing_ok=True)
            if original is not None:
                print(
                    f"{dataset} fold {k} {name} ({info['codec']} {info['width']}×"
                    f"{info['height']}, {info['frames']} frames, {info['bit_rate'] / 1000:.0f} "
                    f"kb/s) {label}: {', '.join(said)} — {time.perf_counter() - start:.1f} s",
                    file=sys.stderr,
                )
    return {"clips": n, "left_out_wide": left_out, "notes": notes, **rows}


def run(rules: list[str], sets: list[str], limit: int | None, max_width: int | None) -> dict:
    """`run_set` of each set, re-encoding in a temporary folder with one encoder process."""
    spawn = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="bench-stability-") as tmp,
        ProcessPoolExecutor(1, mp_context=spawn) as encoder,
    ):
        return {d: run_set(d, rules, limit, max_width, Path(tmp), encoder) for d in sets}


def summary(pairs: list[dict]) -> dict:
    """Pairs, NaNs, median and 10th percentile of each correlation."""
    s = {"pairs": len(pairs)}
    for key in TARGETS:
        x = np.array([p[key] for p in pairs], dtype=float)
        x = x[np.isfinite(x)]
        s[f"{key}_nan"] = len(pairs) - len(x)
        s[f"{key}_median"] = float(np.median(x)) if len(x) else np.nan
        s[f"{key}_p10"] = float(np.percentile(x, 10)) if len(x) else np.nan
    return s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", nargs="+", default=["fine", "paper"], choices=list(RULES))
    parser.add_argument("--sets", nargs="+", default=list(FOLDS), choices=list(FOLDS))
    parser.add_argument("--limit", type=int, default=None, help="held-out clips per fold")
    parser.add_argument(
        "--max-width", type=int, default=None, help="leave out clips wider than this (px)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    start = time.perf_counter()
    result = run(args.rules, args.sets, args.limit, args.max_width)
    seconds = time.perf_counter() - start

    def fmt(x: float) -> str:
        return "nan" if not np.isfinite(x) else f"{x:.3f}"

    groups = [(d, [d]) for d in result] + ([("both", list(result))] if len(result) > 1 else [])
    tables = {}
    print(
        f"| set | variant | rule | kept prediction | pairs | Spearman med "
        f"(≥ {TARGETS['spearman']}) | Spearman p10 | Pearson med (≥ {TARGETS['pearson']}) "
        f"| Pearson p10 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, members in groups:
        for variant in VARIANTS:
            kept = sum(result[d][variant]["kept"] for d in members)
            made = sum(result[d][variant]["variants"] for d in members)
            rows = [
                (r, [p for d in members for p in result[d][variant]["rules"][r]])
                for r in args.rules
            ]
            rows.append((INPUT, [p for d in members for p in result[d][variant]["motion"]]))
            for r, pairs in rows:
                s = summary(pairs)
                tables[f"{label} | {variant} | {r}"] = s
                marks = {
                    k: "" if r == INPUT else " ✓" if s[f"{k}_median"] >= t else " ✗"
                    for k, t in TARGETS.items()
                }
                nans = (
                    f" ({s['spearman_nan']}, {s['pearson_nan']} NaN)"
                    if s["spearman_nan"] or s["pearson_nan"]
                    else ""
                )
                print(
                    f"| {label} | {variant} | {r} | {kept}/{made} | {s['pairs']}{nans} | "
                    f"{fmt(s['spearman_median'])}{marks['spearman']} | {fmt(s['spearman_p10'])} "
                    f"| {fmt(s['pearson_median'])}{marks['pearson']} | {fmt(s['pearson_p10'])} |"
                )
    print(
        "clips: "
        + ", ".join(
            f"{d} {v['clips']}"
            + (
                f" ({v['left_out_wide']} wider than {args.max_width} px left out)"
                if v["left_out_wide"]
                else ""
            )
            for d, v in result.items()
        )
        + f"; {seconds / 60:.1f} min"
    )
    for d, v in result.items():
        for variant in VARIANTS:
            ratio = np.array(v[variant]["rate_ratio"])
            if len(ratio):
                print(
                    f"{d}, {variant}: file bitrate / target median {np.median(ratio):.2f} "
                    f"(range {ratio.min():.2f}–{ratio.max():.2f})"
                )
            for change in v[variant]["changed"]:
                print(f"prediction changed ({d}, {variant}): {change}")
        for note in v["notes"]:
            print(f"note: {note}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rules": args.rules, "seconds": seconds, "summary": tables, "sets": result},
                default=float,
                ensure_ascii=False,
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
