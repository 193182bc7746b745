"""Training memory: peak resident memory of training from a feature store for 100, 250 and 500
clips, a line through it per stage, and what that projects for 7,000 clips (HMDB51-sized).

    .venv/bin/python benchmarks/bench_memory.py [--quick] [--pyramid] [--json FILE]

Each training runs in a child process: `ActionModel.fit` from the store at the defaults (K = 256,
PCA 48, C cross-validated, two encoding workers). The child records the peak RSS of each stage of
`ActionModel.fit_descriptors` — the GMM fit (sampling, PCA, EM), the encoding, the SVM (Gram
matrix, choosing C, the final fit) — by resetting the kernel's high-water mark (VmHWM) as each
starts, the whole run's (``getrusage(RUSAGE_SELF).ru_maxrss``), and the workers' total RSS. The
clips are bench_store.py's: ``small`` (540 clips of 160×120 px × 60 frames, 540 cubes each) and
``hmdb_like`` (48 clips of 320×240 px × 94 frames, 4 256 cubes each, HMDB51's size and mean
length), extracted into out/bench_store/stores/ once.

The projection: per stage, peak = base + per_clip · n (+ gram · n² for the SVM), the line fitted
to the three runs; the Gram term is computed, not fitted (it is too small to see at 500 clips):
the n × n Gram matrix in float32 (4 B) and its float64 copy in the dual solver (8 B). Training's
peak is the largest stage's. The Fisher vector does not depend on the clip's size (D = 73 728
float32 at the defaults) and the GMM sample is 50 000 descriptors whatever the dataset (reached
from 93 ``small`` clips on); what the clip size changes (one clip's descriptors in memory at a
time, the sample's buffer) is measured: 48 ``hmdb_like`` clips against the lines at 48. A check
run of ``--check`` clips (the 540 repeated) tests the lines well beyond 500.

With ``--pyramid`` the models encode the 24-cell space-time pyramid (D = 1 769 472): 7,000
clips' Fisher vectors (49 GB) cannot be held, and training writes them to a file
(`features.DiskMatrix`); every run here is made to take that path, the one 7,000 clips take.
"""

from __future__ import annotations

import actionlrp  # noqa: F401  before numpy: OpenBLAS is loaded as the command line loads it

# isort: split
import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from actionlrp import features
from actionlrp import model as model_module
from actionlrp.classifier import LinearClassifier
from actionlrp.entries import ExtractionSpec
from actionlrp.fisher import FisherEncoder
from actionlrp.model import ActionModel
from actionlrp.store import FeatureStore

STORES = Path(__file__).resolve().parents[1] / "out" / "bench_store" / "stores"
HMDB51_CLIPS = 7_000
LIMIT_GB = 8.0
GRAM_BYTES = 4 + 8  # per entry of the n × n Gram matrix: float32, and its float64 copy
STAGES = ("gmm", "encode", "svm")


def status_mb(field: str) -> float:
    """A field of /proc/self/status (VmRSS: now, VmHWM: the peak since the last reset), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Start this process's peak RSS (VmHWM) again from its RSS now (Linux ≥ 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


class WorkerMemory(threading.Thread):
    """The largest total RSS of this process's descendants (the encoding workers), polled."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb, self.stop = 0.0, threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.wait(0.05):
            total = 0
            for proc in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak_mb = max(self.peak_mb, total / 2**20)


def child(store_dir: str, n: int, pyramid: bool = False) -> None:
    """Train on ``n`` clips of the store (its clips in turn, repeated past its size) with
    `ActionModel.fit`; print the peak RSS of each stage of `ActionModel.fit_descriptors` (GMM,
    encoding, SVM), of the whole run, and of the encoding workers together, as JSON."""
    store = FeatureStore.open(store_dir)
    split = store.split()
    clips = list(split.train + split.test)
    chosen = [clips[(i * len(clips)) // n] for i in range(n)]  # spread over the classes
    peaks: dict[str, float] = {}

    def staged(name: str, function):
        def run(*args, **kwargs):
            reset_peak()
            try:
                return function(*args, **kwargs)
            finally:
                peaks[name] = round(status_mb("VmHWM"), 1)

        return run

    # the stages `ActionModel.fit_descriptors` runs, each measured from its start
    FisherEncoder.fit = staged("gmm", FisherEncoder.fit)
    model_module.transform = staged("encode", model_module.transform)
    LinearClassifier.fit = staged("svm", LinearClassifier.fit)
    if pyramid:
        features.IN_MEMORY_BYTES = 0  # the path 7,000 clips take
    workers = WorkerMemory()
    workers.start()
    start_mb = status_mb("VmRSS")
    start = time.perf_counter()
    model = ActionModel(store=store, progress=False, pyramid=pyramid).fit(
        [c.path for c in chosen], [c.label for c in chosen]
    )
    seconds = time.perf_counter() - start
    workers.stop.set()
    print(json.dumps({
        "clips": n,
        "start_rss_mb": round(start_mb, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "stage_peak_mb": peaks,
        "workers_peak_mb": round(workers.peak_mb, 1),
        "fv_dim": int(model.encoder_.fv_dim_),
        "seconds": round(seconds, 1),
        "stage_seconds": {k: round(v, 1) for k, v in model.fit_seconds_.items()},
    }))


def measure(store: Path, n: int, pyramid: bool = False) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(store), str(n)]
        + (["--pyramid"] if pyramid else []),
        capture_output=True, text=True, check=False,
    )
    if out.returncode:
        raise SystemExit(f"child of {n} clips failed:\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr)
    return result


def ensure_stores() -> tuple[Path, Path]:
    """bench_store.py's ``small-2`` and ``hmdb_like-2`` stores, extracted if absent or made at
    other defaults."""
    from bench_store import dataset, extract

    needed = {"small-2": ("small", {"classes": 6, "clips_per_class": 90}),
              "hmdb_like-2": ("hmdb_like", {"classes": 6, "clips_per_class": 8, "width": 320,
                                            "height": 240, "n_frames": 94})}
    for name, (data, kwargs) in needed.items():
        store = STORES / name
        if not FeatureStore.is_store(store) or FeatureStore.open(store).spec != ExtractionSpec():
            extract(name, dataset(data, **kwargs), 2)  # absent, or of other defaults
    return STORES / "small-2", STORES / "hmdb_like-2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer clips, for a smoke test")
    parser.add_argument("--check", type=int, default=2000, help="clips of the check run")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--pyramid", action="store_true", help="models with the pyramid")
    parser.add_argument("--child", nargs=2, metavar=("STORE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.pyramid)
        return
    small, hmdb = ensure_stores()
    report: dict = {"machine": f"{os.cpu_count()} cores", "load_average": [os.getloadavg()]}
    sizes = (20, 50, 100) if args.quick else (100, 250, 500)
    runs = [measure(small, n, args.pyramid) for n in sizes]
    report["small"] = runs
    n = np.array(sizes, float)
    fv_mb = runs[0]["fv_dim"] * 4 / 2**20
    lines = {}
    for stage in STAGES:
        gram = GRAM_BYTES * n**2 / 2**20 if stage == "svm" else 0 * n
        peak = np.array([r["stage_peak_mb"][stage] for r in runs]) - gram
        per_clip, base = np.polyfit(n, peak, 1)
        lines[stage] = {"base_mb": round(base, 1), "per_clip_mb": round(per_clip, 4),
                        "per_clip_in_fisher_vectors": round(per_clip / fv_mb, 2)}
    report["lines"] = lines

    def project(clips: int, extra: dict | None = None) -> dict:
        """Each stage's peak for ``clips`` clips, MiB, and the largest."""
        out = {}
        for stage, line in lines.items():
            value = line["base_mb"] + line["per_clip_mb"] * clips + (extra or {}).get(stage, 0)
            if stage == "svm":
                value += GRAM_BYTES * clips**2 / 2**20
            out[stage] = round(value, 1)
        out["peak"] = max(out.values())
        return out

    if args.check:
        check = measure(small, 200 if args.quick else args.check, args.pyramid)
        check["projected_mb"] = project(check["clips"])
        report["check"] = check
    hmdb_run = measure(hmdb, 48, args.pyramid)
    at_48 = project(48)
    extra = {s: max(0.0, hmdb_run["stage_peak_mb"][s] - at_48[s]) for s in STAGES}
    report["clip_size"] = {"hmdb_like": hmdb_run, "line_at_48_mb": at_48,
                           "extra_mb": {s: round(v, 1) for s, v in extra.items()}}
    defaults, hmdb_like = project(HMDB51_CLIPS), project(HMDB51_CLIPS, extra)
    report["projection_7000"] = {
        "small_clips_mb": defaults,
        "hmdb_like_clips_mb": hmdb_like,
        "hmdb_like_peak_gb": round(hmdb_like["peak"] / 1024, 2),
        "plus_encoding_workers_gb": round(
            (hmdb_like["encode"] + hmdb_run["workers_peak_mb"]) / 1024, 2
        ),
        "fisher_vectors_gb": round(HMDB51_CLIPS * fv_mb / 1024, 2),
        "fisher_vectors_where": "disk" if args.pyramid else "memory",
        "gram_gb": round(GRAM_BYTES * HMDB51_CLIPS**2 / 2**30, 2),
        "limit_gb": LIMIT_GB,
    }
    report["load_average"].append(os.getloadavg())
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
