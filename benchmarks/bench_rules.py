"""How much of the score each LRP rule passes on to the motion field, on real footage, and how
well it localises the actor on the built-in clips.

Real sets (``real_folds.py``): every clip of fight-dev (group 5-fold) and ut-interaction-set1
(leave one sequence out), each explained by the model of the fold that held it out, for the
class it was predicted. Per rule: the median and 90th percentile over clips of
|absorbed| / |score| and of the absorbed mass (`Explanation.absorbed_mass`). Built-in
(``make demo``'s data and model): mass on the actor, within one macroblock, pointing game, top
10 % frames in the action, over the correctly classified test clips.

    python benchmarks/bench_rules.py                       # every rule below, both real sets
    python benchmarks/bench_rules.py --rules fine paper --sets fight-dev
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from real_folds import FOLDS, folds

import actionlrp  # noqa: F401 — sets OpenBLAS's thread timeout before numpy loads
from actionlrp.builtin import LOCALISATION_KEYS, load_ground_truth, localisation_scores
from actionlrp.datasets import load_split
from actionlrp.descriptors import describe
from actionlrp.errors import ActionLRPError
from actionlrp.model import ActionModel
from actionlrp.motion import motion_field
from actionlrp.relevance import explain
from actionlrp.rules import RULES, Rule

#: The fine rule before these were compared: ε = 1, the bias over the live dimensions, the PCA
#: layer by the ε-rule.
OLD_FINE = Rule("fine, ε=1 (until 2026-12)", 1.0, bias="live", pca_rule="epsilon")


def _variants() -> dict[str, Rule]:
    rules = {"fine, ε=1 (until 2026-12)": OLD_FINE}
    rules["fine-zero, ε=1 (until 2026-12)"] = replace(OLD_FINE, root="zero")
    for eps in (0.1, 0.01, 0.001, 1e-6):
        rules[f"paper, ε={eps:g}"] = replace(RULES["paper"], epsilon=eps)
        rules[f"fine ε-PCA, ε={eps:g}"] = replace(OLD_FINE, epsilon=eps)
    for eps in (1.0, 0.1, 0.01, 0.001):
        energy = {"epsilon": eps, "bias": "energy"}
        rules[f"paper, ε={eps:g}, bias energy"] = replace(RULES["paper"], **energy)
        rules[f"fine ε-PCA, ε={eps:g}, bias energy"] = replace(OLD_FINE, **energy)
    for pca, scale in ((1.0, "layer"), (0.1, "layer"), (1.0, "dimension"), (0.1, "dimension")):
        rules[f"fine ε-PCA, ε=0.01, PCA ε′={pca:g} per {scale}, bias energy"] = replace(
            OLD_FINE, epsilon=0.01, bias="energy", pca_epsilon=pca, pca_scale=scale
        )
    for eps, root, bias in (
        (1.0, "still", "live"),
        (0.01, "still", "live"),
        (0.1, "still", "energy"),
        (0.01, "still", "energy"),
        (0.001, "still", "energy"),
        (0.01, "zero", "energy"),
    ):
        name = f"fine α-β PCA, ε={eps:g}, {root} root, bias {bias}"
        rules[name] = replace(RULES["fine"], epsilon=eps, root=root, bias=bias)
    return {name: replace(rule, name=name) for name, rule in rules.items()}


#: Rules compared, by name: the presets and what was tried on the way to them.
CANDIDATES: dict[str, Rule] = {**RULES, **_variants()}


def real_rows(names: list[str], sets: list[str], limit: int | None) -> dict:
    """Per set and rule: |absorbed| / |score| and the absorbed mass of every held-out clip."""
    out = {}
    for dataset in sets:
        table = {name: {"ratio": [], "mass": [], "seconds": []} for name in names}
        n = 0
        for _, model, clips in folds(dataset):
            for clip in clips[:limit]:
                try:
                    field = motion_field(clip.path, model.motion, model.cell, hog=model.params_.hog)
                    desc = describe(field, model.params_)
                    for name in names:
                        start = time.perf_counter()
                        e = explain(model, field, desc, rule=CANDIDATES[name])
                        table[name]["seconds"].append(time.perf_counter() - start)
                        table[name]["ratio"].append(abs(e.absorbed) / max(abs(e.score), 1e-12))
                        table[name]["mass"].append(e.absorbed_mass)
                    n += 1
                except ActionLRPError as exc:
                    print(f"skipped {exc}", file=sys.stderr)
        out[dataset] = {"clips": n, "rules": table}
    return out


def builtin_rows(names: list[str], data: Path, model_path: Path) -> dict:
    """Per rule: the localisation scores on the built-in test clips classified correctly."""
    model = ActionModel.load(model_path)
    split = load_split(data)
    rows = {name: {k: [] for k in LOCALISATION_KEYS} | {"ratio": []} for name in names}
    for clip in split.test:
        field = motion_field(clip.path, model.motion, model.cell, hog=model.params_.hog)
        desc = describe(field, model.params_)
        truth = load_ground_truth(clip.path)
        for name in names:
            e = explain(model, field, desc, rule=CANDIDATES[name])
            if e.class_name != clip.label:
                continue
            for k, v in localisation_scores(e, truth, field.cell).items():
                rows[name][k].append(v)
            rows[name]["ratio"].append(abs(e.absorbed) / max(abs(e.score), 1e-12))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--sets", nargs="+", default=list(FOLDS), choices=list(FOLDS))
    parser.add_argument("--limit", type=int, default=None, help="held-out clips per fold")
    parser.add_argument("--data", default="out/demo/data", help="built-in dataset (make demo)")
    parser.add_argument("--model", default="out/demo/model.npz")
    parser.add_argument("--skip-builtin", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    real = real_rows(args.rules, args.sets, args.limit)
    built = {} if args.skip_builtin else builtin_rows(args.rules, Path(args.data), args.model)
    head = "".join(f" | {d} |abs|/|f| med, p90 | mass med" for d in real)
    print(f"| rule{head} | built-in mass on actor, near, pointing, top frames, |abs|/|f| med |")
    for name in args.rules:
        cells = []
        for d in real.values():
            r = d["rules"][name]
            ratio, mass = np.array(r["ratio"]), np.array(r["mass"])
            cells.append(
                f"{np.median(ratio):.3f}, {np.percentile(ratio, 90):.3f} | {np.median(mass):.3f}"
            )
        loc = ""
        if built:
            b = built[name]
            loc = ", ".join(f"{np.mean(b[k]):.2f}" for k in LOCALISATION_KEYS)
            loc += f", {np.median(b['ratio']):.3f}"
        print(f"| {name} | " + " | ".join(cells) + f" | {loc} |")
    print("clips: " + ", ".join(f"{d} {v['clips']}" for d, v in real.items()))
    if args.json:
        args.json.write_text(json.dumps({"real": real, "builtin": built}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
