"""Faithfulness of the explanations, measured on real encoded clips (results in the README).

* **Region perturbation** (Samek et al. 2017, AOPC): cut the motion field into regions of
  16 px × 16 px × 5 frames (one descriptor cell), remove the motion of the regions in order —
  most relevant first by LRP (uniform and ``--fine``), at random, or by motion magnitude (a
  saliency baseline) — re-run the forward pass after each step and record the score of the
  explained class. AOPC = mean over steps of f(x) − f(x after the step); higher is more faithful.
* **Speed:** explaining a clip against classifying it (extraction + FV + SVM), and rendering the
  heatmap video, in frames per second.

    python benchmarks/bench_faithfulness.py [--data DIR --model MODEL] [--fight N]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from actionlrp.codec import motion_field
from actionlrp.datasets import folder_dataset, load_split
from actionlrp.descriptors import describe
from actionlrp.model import ActionModel
from actionlrp.relevance import explain
from actionlrp.render import write_heatmap_video

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
    out = []
    for k in steps:
        flow = field.flow.copy()
        flow[np.isin(region_of, order[:k])] = 0.0
        out.append(score(model, dataclasses.replace(field, flow=flow), c))
    return np.array(out)


def aopc_for_clip(model, path: Path, n_steps: int, rng) -> dict[str, float]:
    field = motion_field(path, model.motion, model.cell)
    desc = describe(field, model.params_)
    region_of = regions(field.grid_shape, field.cell)
    n_regions = int(region_of.max()) + 1
    per_step = max(1, n_regions // (2 * n_steps))  # remove up to half of the clip's regions
    steps = [k * per_step for k in range(n_steps + 1)]

    def ranked(values: np.ndarray) -> np.ndarray:
        sums = np.bincount(region_of.ravel(), values.ravel(), n_regions)
        return np.argsort(-sums, kind="stable")

    orders = {}
    for fine in (False, True):
        e = explain(model, field, desc, fine=fine)
        orders["lrp_fine" if fine else "lrp"] = ranked(e.relevance_voxels)
    c = e.class_index
    orders["motion"] = ranked(np.linalg.norm(field.flow, axis=-1))
    orders["random"] = rng.permutation(n_regions)
    result = {}
    for name, order in orders.items():
        curve = perturbation_curve(model, field, order, region_of, c, steps)
        result[name] = float(np.nanmean(curve[0] - curve[1:]))
    return result


def speed(model, path: Path, repeat: int = 3) -> dict[str, float]:
    """Median seconds to classify and to explain a clip (both from the file), and render fps."""

    def classify() -> None:
        field = motion_field(path, model.motion, model.cell)
        model.decision_function_descriptors([describe(field, model.params_)])

    def explain_clip():
        field = motion_field(path, model.motion, model.cell)
        return explain(model, field, describe(field, model.params_)), field

    times = {"classify": [], "explain": []}
    classify()  # warm-up
    for _ in range(repeat):
        start = time.perf_counter()
        classify()
        times["classify"].append(time.perf_counter() - start)
        start = time.perf_counter()
        e, field = explain_clip()
        times["explain"].append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_heatmap_video(path, e, field, Path(tmp) / "h.mp4")
        render_fps = field.n_frames / (time.perf_counter() - start)
    ratio = float(np.median(times["explain"]) / np.median(times["classify"]))
    return {"explain_over_classify": ratio, "render_fps": render_fps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="out/demo/data", help="built-in dataset (make demo)")
    parser.add_argument("--model", default="out/demo/model.npz")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--clips", type=int, default=12, help="test clips to perturb")
    parser.add_argument("--fight", type=int, default=0, help="also N fight-dev clips (CV-free)")
    parser.add_argument("--fight-model", default=None, help="model trained on fight-dev")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = ActionModel.load(args.model)
    split = load_split(args.data)
    clips = list(split.test)[:: max(1, len(split.test) // args.clips)][: args.clips]
    sets = [("built-in", model, clips)]
    if args.fight and args.fight_model:
        fight = folder_dataset(Path(__file__).resolve().parents[2] / "shared/data/fight-dev")
        small = [c for c in fight if c.path.stat().st_size < 200_000][::3][: args.fight]
        sets.append(("fight-dev", ActionModel.load(args.fight_model), small))
    for name, m, chosen in sets:
        rows = [aopc_for_clip(m, c.path, args.steps, rng) for c in chosen]
        print(f"\n{name}: AOPC over {len(rows)} clips, {args.steps} steps (higher = more faithful)")
        for key in ("lrp", "lrp_fine", "motion", "random"):
            values = [r[key] for r in rows]
            print(f"  {key:<9} {np.mean(values):+.4f} ± {np.std(values):.4f}")
    s = [speed(model, c.path) for c in clips[:4]]
    print(
        f"\nspeed: explain / classify = {np.mean([x['explain_over_classify'] for x in s]):.2f}, "
        f"heatmap video {np.mean([x['render_fps'] for x in s]):.0f} frames/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
