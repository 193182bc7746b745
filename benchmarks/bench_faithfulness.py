"""Faithfulness of the explanations, measured on real encoded clips (results in the README).

* **Region perturbation** (Samek et al. 2017, AOPC): cut the motion field into regions of
  16 px × 16 px × 5 frames (one descriptor cell), remove the motion of the regions in order
  (their flow becomes the frame's median flow, i.e. the camera's: zero would draw new motion
  boundaries under a pan) —
  most relevant first by LRP (rules paper, fine-zero and fine), at random, or by motion magnitude (a
  saliency baseline) — re-run the forward pass after each step and record the score of the
  explained class. AOPC = mean over steps of f(x) − f(x after the step); higher is more faithful.
* **Speed:** explaining a clip against classifying it (extraction + FV + SVM), and rendering the
  heatmap video, in frames per second.

    python benchmarks/bench_faithfulness.py [--data DIR --model MODEL] [--fight N]
"""

from __future__ import annotations

import actionlrp  # noqa: F401  before numpy: OpenBLAS is loaded as the command line loads it

# isort: split
import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from actionlrp.builtin import make_action_clip
from actionlrp.datasets import load_split
from actionlrp.descriptors import describe
from actionlrp.model import ActionModel
from actionlrp.motion import motion_field
from actionlrp.relevance import explain
from actionlrp.render import write_heatmap_video
from actionlrp.rules import DEFAULT_RULE, RULES, get_rule

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_folds import FOLDS, folds  # noqa: E402

REGION_PX, REGION_FRAMES = 16, 5


def regions(shape: tuple[int, int, int], cell: int) -> np.ndarray:
    """Region index of every voxel (T, gh, gw)."""
    t, gh, gw = shape
    per = REGION_PX // cell
    rt, ry, rx = np.arange(t) // REGION_FRAMES, np.arange(gh) // per, np.arange(gw) // per
    ny, nx = -(-gh // per), -(-gw // per)
    return (rt[:, None, None] * ny + ry[None, :, None]) * nx + rx[None, None, :]


def score(model: ActionModel, field, class_index: int) -> float:
    desc = describe(field, model.params_)
    if len(desc) == 0:
        return float("nan")
    return float(model.decision_function_descriptors([desc])[0, class_index])


def perturbation_curve(model, field, order: np.ndarray, region_of: np.ndarray, c: int, steps):
    """Scores after removing the motion of the first k regions of ``order``, for k in steps."""
    t = field.n_frames
    camera = np.median(field.flow.reshape(t, -1, 2), axis=1)[:, None, None, :]
    camera = np.broadcast_to(camera, field.flow.shape)
    out = []
    for k in steps:
        flow = field.flow.copy()
        removed = np.isin(region_of, order[:k])
        flow[removed] = camera[removed]
        out.append(score(model, dataclasses.replace(field, flow=flow), c))
    return np.array(out)


def aopc_for_clip(
    model,
    path: Path,
    n_steps: int,
    rng,
    epsilons: tuple[float, ...] | None = None,
    fraction: float = 0.5,
    with_occlusion: bool = False,
    seconds: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """AOPC of each order of the regions of one clip: LRP by every preset (at their own ε, or at
    each of ``epsilons``), occlusion (if asked), motion magnitude and random order. The time of
    each explanation is appended to ``seconds``."""
    field = motion_field(path, model.motion, model.cell, hog=model.params_.hog)
    desc = describe(field, model.params_)
    region_of = regions(field.grid_shape, field.cell)
    n_regions = int(region_of.max()) + 1
    per_step = max(1, int(fraction * n_regions) // n_steps)  # up to ``fraction`` of the regions
    steps = [k * per_step for k in range(n_steps + 1)]

    def ranked(values: np.ndarray) -> np.ndarray:
        sums = np.bincount(region_of.ravel(), values.ravel(), n_regions)
        return np.argsort(-sums, kind="stable")

    orders = {}
    seconds = {} if seconds is None else seconds
    for eps in epsilons or (None,):
        for rule in RULES:
            name = f"lrp {rule}" + ("" if eps is None else f" ε={eps:g}")
            start = time.perf_counter()
            e = explain(model, field, desc, rule=get_rule(rule, eps))
            seconds.setdefault(name, []).append(time.perf_counter() - start)
            orders[name] = ranked(e.relevance_voxels)
    c = e.class_index
    if with_occlusion:
        from actionlrp.occlusion import occlusion

        start = time.perf_counter()
        o = occlusion(model, field, desc, class_name=e.class_name)
        seconds.setdefault("occlusion", []).append(time.perf_counter() - start)
        orders["occlusion"] = ranked(o.relevance_voxels)
    orders["motion"] = ranked(np.linalg.norm(field.flow, axis=-1))
    orders["random"] = rng.permutation(n_regions)
    result = {}
    for name, order in orders.items():
        curve = perturbation_curve(model, field, order, region_of, c, steps)
        result[name] = float(np.nanmean(curve[0] - curve[1:]))
    return result


def render_speed(model, width: int = 320, height: int = 240) -> dict[str, float]:
    """Frames per second of the heatmap video of a generated ``width × height`` action clip."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_action_clip(
            Path(tmp) / "clip.mp4", "walk", seed=5, width=width, height=height, n_frames=90
        )
        field = motion_field(clip.path, model.motion, model.cell, hog=model.params_.hog)
        e = explain(model, field, describe(field, model.params_), rule="fine-zero")
        out = {}
        for arrows in (False, True):
            best = np.inf
            for _ in range(3):
                start = time.perf_counter()
                write_heatmap_video(clip.path, e, field, Path(tmp) / "h.mp4", arrows=arrows)
                best = min(best, time.perf_counter() - start)
            out["arrows" if arrows else "plain"] = field.n_frames / best
    return out


def speed(model, path: Path, repeat: int = 5) -> dict[str, float]:
    """Explaining a clip ÷ classifying it (both from the file, medians): the paper's rule, the
    fine one from a motionless root (the default), and the fine one without a root."""

    def classify() -> None:
        field = motion_field(path, model.motion, model.cell, hog=model.params_.hog)
        model.decision_function_descriptors([describe(field, model.params_)])

    def explain_clip(rule: str) -> None:  # as the command line runs it
        model.explain(path, rule=rule)

    runs = {"classify": classify, "uniform": lambda: explain_clip("paper")}
    runs["fine"] = lambda: explain_clip("fine")
    runs["plain"] = lambda: explain_clip("fine-zero")
    times: dict[str, list[float]] = {name: [] for name in runs}
    classify()  # warm-up
    for _ in range(repeat):
        for name, run in runs.items():  # interleaved, so load changes hit all three alike
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    base = float(np.median(times["classify"]))
    return {name: float(np.median(times[name])) / base for name in ("uniform", "fine", "plain")}


def print_aopc(name: str, rows: list[dict[str, float]], steps: int) -> None:
    print(f"\n{name}: AOPC over {len(rows)} clips, {steps} steps (higher = more faithful)")
    print(f"  {'order':<22} {'AOPC':>8} {'± std':>7}   vs motion: mean Δ, clips won")
    motion = np.array([r["motion"] for r in rows])
    for key in rows[0]:
        values = np.array([r[key] for r in rows])
        delta = values - motion
        print(
            f"  {key:<22} {values.mean():+8.4f} {values.std():7.4f}   "
            f"{delta.mean():+.4f}, {int((delta > 0).sum())}/{len(rows)}"
        )


def smallest(clips: list, n: int) -> list:
    """The ``n`` smallest clips (by file size): the quickest to perturb step by step."""
    return sorted(clips, key=lambda c: c.path.stat().st_size)[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="out/demo/data", help="built-in dataset (make demo)")
    parser.add_argument("--model", default="out/demo/model.npz")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--fraction", type=float, default=0.5, help="share of regions removed")
    parser.add_argument("--clips", type=int, default=12, help="test clips to perturb")
    parser.add_argument(
        "--fight", type=int, default=0, help="also N held-out fight-dev clips (group fold 1 of 5)"
    )
    parser.add_argument("--fight-fraction", type=float, default=0.1)
    parser.add_argument("--skip-builtin", action="store_true", help="fight-dev and speed only")
    parser.add_argument(
        "--epsilon", type=float, nargs="+", default=None, help="ε to compare (default: each rule's)"
    )
    parser.add_argument(
        "--real",
        nargs="*",
        default=None,
        help="AOPC on the held-out clips of the real sets' folds (default both), with occlusion",
    )
    parser.add_argument("--per-fold", type=int, default=2, help="--real: smallest clips per fold")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = ActionModel.load(args.model)
    split = load_split(args.data)
    clips = list(split.test)[:: max(1, len(split.test) // args.clips)][: args.clips]
    sets = [] if args.skip_builtin else [("built-in", model, clips)]
    if args.fight:
        _, fold_model, held_out = next(folds("fight-dev", only=1))  # group fold 1 of 5
        sets.append(("fight-dev", fold_model, smallest(held_out, args.fight)))
    eps = None if args.epsilon is None else tuple(args.epsilon)
    for name, m, chosen in sets:
        fraction = args.fight_fraction if name == "fight-dev" else args.fraction
        rows = [aopc_for_clip(m, c.path, args.steps, rng, eps, fraction) for c in chosen]
        print_aopc(name, rows, args.steps)
    if args.real is not None:
        for name in args.real or list(FOLDS):
            seconds: dict[str, list[float]] = {}
            rows = [
                aopc_for_clip(m, c.path, args.steps, rng, eps, args.fight_fraction, True, seconds)
                for _, m, test in folds(name)
                for c in smallest(test, args.per_fold)
            ]
            print_aopc(f"{name} (held out, {args.per_fold} smallest per fold)", rows, args.steps)
            times = {k: float(np.median(v)) for k, v in seconds.items()}
            each = ", ".join(f"{k} {v:.3f}" for k, v in times.items())
            print(f"  median seconds per clip: {each}")
            lrp = f"lrp {DEFAULT_RULE.name}"
            ratio = np.mean([r[lrp] for r in rows]) / np.mean([r["occlusion"] for r in rows])
            print(
                f"  {lrp} ÷ occlusion: AOPC {ratio:.2f} (target ≥ 0.9), "
                f"time {times[lrp] / times['occlusion']:.3f} (target ≤ 0.05)"
            )
    print("\nexplain ÷ classify, from the file (medians of 5 interleaved runs per clip)")
    print(f"  {'clips':<22} {'uniform':>8} {'fine':>6} {'fine, worst clip':>17} {'no root':>8}")
    everything = []
    groups = [(".mp4", "H.264"), (".avi", "MPEG-4 Part 2")]
    for suffix, codec in [*groups, (None, "all")]:
        if suffix is None:
            s = everything
        else:
            chosen = [c for c in split.test if c.path.suffix == suffix][::2][:6]
            s = [speed(model, c.path) for c in chosen]
            everything += s
        if s:
            print(
                f"  {f'{len(s)} {codec}':<22} {np.mean([x['uniform'] for x in s]):8.2f} "
                f"{np.mean([x['fine'] for x in s]):6.2f} {max(x['fine'] for x in s):17.2f} "
                f"{np.mean([x['plain'] for x in s]):8.2f}"
            )
    r = render_speed(model)
    print(
        f"heatmap video at 320×240: {r['plain']:.0f} frames/s, "
        f"{r['arrows']:.0f} frames/s with motion-vector arrows"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
