"""Speed of Fisher vector encoding (design §3), in frames of video per second.

On the descriptors of a generated 320×240, 30 fps, 300-frame H.264 clip with three moving
objects and a pan: fit an encoder with K = 256 per feature type (HOF, MBHx, MBHy), without PCA
and with PCA to 64 dimensions, then time `FisherEncoder.encode` alone (the fit is excluded).
Times each with BLAS's default threads and with one BLAS thread (threadpoolctl), and with
``--busy`` once more while a child process keeps one core busy: OpenBLAS's threads wait for each
other, so on a shared machine one thread can be the faster. Prints the best and median
wall-clock time of ``--repeat`` runs, frames per second of video (frames / median encoding
time), the CPU time of a run summed over threads, and the time of the relevance step. Last, the
clip cut into 60-frame clips encoded one after another in a fresh process, as `predict` runs:
ms and page faults per clip.

    python benchmarks/bench_fisher.py [--repeat 7] [--frames 300] [--busy]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from actionlrp import synthetic
from actionlrp.codec import read_motion_field
from actionlrp.descriptors import LocalDescriptors, describe
from actionlrp.fisher import FisherEncoder
from actionlrp.fisher_lrp import epsilon_relevance
from actionlrp.synthetic import SyntheticObject

WIDTH, HEIGHT, FPS = 320, 240, 30
TARGET_FPS = 1000
SHORT_FRAMES = 60  # a 2-s clip at 30 fps, the length of the built-in ones


def scene_objects() -> list[SyntheticObject]:
    return [
        SyntheticObject("oscillate", size=56, amplitude=30.0, period=40.0, axis="y"),
        SyntheticObject("translate", size=(64, 40), centre=(40.0, 170.0), velocity=(2.5, 0.0)),
        SyntheticObject("rotate", size=40, centre=(250.0, 60.0), degrees_per_frame=4.0),
    ]


def timings(function, repeat: int) -> tuple[list[float], float]:
    """Wall-clock seconds of each run, and the median CPU seconds (all threads) per run."""
    function()  # warm up: BLAS threads, caches
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, float(np.median(cpu))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument(
        "--busy",
        action="store_true",
        help="also time with one core kept busy by a child process (a shared machine)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        clip = synthetic.make_clip(
            Path(folder) / "bench_fisher.mp4",
            scene_objects(),
            width=WIDTH,
            height=HEIGHT,
            n_frames=args.frames,
            fps=FPS,
            b_frames=2,
            pan=(1.0, 0.0),
            seed=1,
        )
        field = read_motion_field(clip.path)
    desc = describe(field)
    n_frames = field.n_frames
    print(
        f"clip: {WIDTH}×{HEIGHT}, {n_frames} frames at {FPS} fps; {len(desc)} descriptors; "
        f"K = {args.components}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )

    rows = []
    for pca_dims in (None, 64):
        encoder = FisherEncoder(
            n_components=args.components, pca_dims=pca_dims, max_samples=len(desc), max_iter=20
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 20 EM iterations may not converge: fine here
            encoder.fit([desc])
        fit_seconds = time.perf_counter() - start
        r3 = np.random.default_rng(0).standard_normal(encoder.fv_dim_)
        for busy in (False, True) if args.busy else (False,):
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                for blas_threads in (None, 1):
                    with threadpool_limits(limits=blas_threads, user_api="blas"):
                        wall, cpu = timings(lambda e=encoder: e.encode(desc), args.repeat)
                        explain, _ = timings(
                            lambda e=encoder, r=r3: epsilon_relevance(e, desc, r, 0.01), 3
                        )
                    median = float(np.median(wall))
                    rows.append(
                        {
                            "pca": "none" if pca_dims is None else str(pca_dims),
                            "dim": encoder.fv_dim_,
                            "blas": "default" if blas_threads is None else str(blas_threads),
                            "machine": "1 core busy" if busy else "idle",
                            "fit": fit_seconds,
                            "best": min(wall),
                            "median": median,
                            "fps": n_frames / median,
                            "cpu": cpu,
                            "explain": min(explain),
                        }
                    )
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()

    header = (
        f"{'PCA':>5} {'D':>7} {'BLAS thr':>8} {'machine':>12} {'fit s':>6} {'best ms':>8} "
        f"{'median ms':>9} {'frames/s':>9} {'CPU ms':>7} {'R(2) ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['pca']:>5} {r['dim']:>7} {r['blas']:>8} {r['machine']:>12} {r['fit']:>6.1f} "
            f"{r['best'] * 1e3:>8.1f} {r['median'] * 1e3:>9.1f} {r['fps']:>9.0f} "
            f"{r['cpu'] * 1e3:>7.0f} {r['explain'] * 1e3:>8.1f}"
        )
    print("frames/s = frames of video / median wall-clock encoding time (fit excluded)")
    idle = [r for r in rows if r["machine"] == "idle" and r["blas"] == "default"]
    worst = min(r["fps"] for r in idle)
    verdict = "meets" if worst >= TARGET_FPS else "misses"
    print(f"default BLAS threads: {verdict} ≥ {TARGET_FPS} frames/s (lowest {worst:.0f})")
    print(
        "relevance step / encoding: "
        f"{idle[0]['explain'] / idle[0]['best']:.1f}× (it encodes once more, then one more "
        "GEMM per type)"
    )
    # As `predict` and `evaluate` run: many short clips one after another, in a fresh process
    # that only loads the encoder (this K with PCA 64, and the demo's K 64 with PCA 32).
    pieces = short_clips(desc, SHORT_FRAMES)
    small = FisherEncoder(n_components=64, pca_dims=32, max_samples=len(desc), max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small.fit([desc])
    for e in (encoder, small):
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            ms, faults = pool.apply(
                encode_in_turn, (e.get_params(), e.get_state(), pieces, args.repeat)
            )
        print(
            f"K {e.n_components}, PCA {e.pca_dims}: {len(pieces)} clips of {SHORT_FRAMES} frames "
            f"encoded one after another in a fresh process: {ms:.1f} ms per clip, "
            f"{faults:.0f} page faults per clip"
        )
    return 0


def encode_in_turn(params, state, pieces, repeat: int) -> tuple[float, float]:
    """Median ms per clip of encoding ``pieces`` in turn, and minor page faults per clip."""
    encoder = FisherEncoder.from_state(params, state)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, _ = timings(lambda: [encoder.encode(piece) for piece in pieces], repeat)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return float(np.median(wall)) / len(pieces) * 1e3, faults / ((repeat + 1) * len(pieces))


def short_clips(desc: LocalDescriptors, frames: int) -> list[LocalDescriptors]:
    """The descriptors of ``desc`` cut by start frame into clips of ``frames`` frames (copies)."""
    start = desc.boxes[:, 0]
    out = []
    for t0 in range(0, int(start.max()) + 1, frames):
        keep = (start >= t0) & (start < t0 + frames)
        if keep.any():
            features = {k: v[keep].copy() for k, v in desc.features.items()}
            out.append(LocalDescriptors(features, desc.boxes[keep].copy()))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
