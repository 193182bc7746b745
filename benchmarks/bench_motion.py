"""Speed and memory of the compressed-domain front end, measured side by side in one run.

On a generated 320×240, 30 fps, 10 s clip in H.264 and in MPEG-4 Part 2:

(a) plain FFmpeg decode of the same stream through PyAV — the floor;
(b) motion field from the motion vectors (for H.264, each block's reference picture found in
    the decoded luma);
(c) motion field + HOF / MBHx / MBHy descriptors, described while the clip decodes, as
    extraction does (`actionlrp.motion.described_motion_field`);
(c+) the same with HOG too (the defaults: the luma's gradients in the decoding thread);
(d) Farnebäck optical-flow field + the same descriptors (the pixel-domain reference).

Prints frames per second (the best of ``--repeat`` rounds in which (a), (b), (c) and (c+) take
turns; (d) once, after all of them), the ratios (c)/(a) and (c)/(d), and the peak memory of
(c) on a 10-minute clip (in a child process, so the figure is that run's own).

    python benchmarks/bench_motion.py [--repeat 3] [--skip-long]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from actionlrp import synthetic
from actionlrp.codec import read_motion_field
from actionlrp.descriptors import DescriptorParams, describe, iter_describe
from actionlrp.flow import farneback_motion_field
from actionlrp.motion import described_motion_field
from actionlrp.synthetic import SyntheticObject

WIDTH, HEIGHT, FPS = 320, 240, 30


def scene_objects() -> list[SyntheticObject]:
    return [
        SyntheticObject("oscillate", size=56, amplitude=30.0, period=40.0, axis="y"),
        SyntheticObject("translate", size=(64, 40), centre=(40.0, 170.0), velocity=(2.5, 0.0)),
        SyntheticObject("rotate", size=40, centre=(250.0, 60.0), degrees_per_frame=4.0),
    ]


def make_clips(folder: Path, n_frames: int) -> dict[str, Path]:
    clips = {}
    for codec, suffix in (("libx264", ".mp4"), ("mpeg4", ".avi")):
        clip = synthetic.make_clip(
            folder / f"bench_{codec}{suffix}",
            scene_objects(),
            width=WIDTH,
            height=HEIGHT,
            n_frames=n_frames,
            fps=FPS,
            codec=codec,
            b_frames=2,
            pan=(1.0, 0.0),
            seed=1,
            bit_rate=1_500_000,
        )
        clips[codec] = clip.path
    return clips


def plain_decode(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def decoder_threads(path: Path) -> str:
    """The threading PyAV's defaults give the decoder of (a), e.g. ``slice ×3``."""
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        next(container.decode(video=0))
        return f"{ctx.thread_type.name.lower()} ×{ctx.thread_count}"


def motion_only(path: Path) -> int:
    return read_motion_field(path).n_frames


def motion_and_descriptors(path: Path) -> int:
    field, _ = described_motion_field(path, DescriptorParams(hog=False))
    return field.n_frames


def with_hog(path: Path) -> int:
    field, _ = described_motion_field(path, DescriptorParams(hog=True))
    return field.n_frames


def flow_and_descriptors(path: Path) -> int:
    field = farneback_motion_field(path)
    describe(field)
    return field.n_frames


def best_fps(fns: list, path: Path, repeat: int) -> list[float]:
    """Frames per second of each of ``fns`` on ``path``, the best of ``repeat`` rounds.

    The functions take turns within each round, so that a passing load on the machine slows
    them alike rather than one of them alone.
    """
    best = [np.inf] * len(fns)
    frames = [0] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            frames[k] = fn(path)
            best[k] = min(best[k], time.perf_counter() - start)
    return [n / t for n, t in zip(frames, best, strict=True)]


def write_long_clip(path: Path, minutes: float) -> int:
    """A long H.264 clip: a 10 s scene looped, encoded frame by frame (never held whole)."""
    scene = synthetic.render_scene(
        scene_objects(), width=WIDTH, height=HEIGHT, n_frames=300, pan=(1.0, 0.0), seed=1
    )
    total = int(minutes * 60 * FPS)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20", "bf": "2"}
        for t in range(total):
            frame = av.VideoFrame.from_ndarray(scene.frames[t % 300], format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return total


def peak_memory_child(path: str) -> None:
    """Run (c) streaming on ``path`` and print its frames, cubes and peak RSS as JSON."""
    start = time.perf_counter()
    field = read_motion_field(path)
    cubes = sum(len(chunk) for chunk in iter_describe(field))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "frames": field.n_frames,
                "cubes": cubes,
                "seconds": seconds,
                "peak_bytes": peak,
                "field_bytes": field.flow.nbytes,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-long", action="store_true", help="skip the 10-minute memory run")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        peak_memory_child(args.memory_child)
        return 0
    with tempfile.TemporaryDirectory(prefix="actionlrp-bench-") as tmp:
        folder = Path(tmp)
        clips = make_clips(folder, 10 * FPS)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"clip: {WIDTH}x{HEIGHT}, {FPS} fps, 10 s, 2 B-frames, synthetic scene")
        threads = ", ".join(f"{codec} {decoder_threads(path)}" for codec, path in clips.items())
        print(
            f"decoder threads: (a) PyAV's defaults ({threads}), (b)-(d) the same slice threads; "
            "(c) describes in the consuming thread while the decoding thread goes on, what is "
            f"left at the end in up to {cpus} threads. (b), (c) skip the pixel work the vectors "
            "do not need (H.264: loop filter; MPEG-4: inverse DCT, pictures at 1/8 size; (c+) "
            "decodes MPEG-4's pixels for HOG); "
            "H.264 with several reference frames (x264's 3 here) reads the luma to find each "
            "block's reference picture. "
            f"Load average {os.getloadavg()[0]:.2f}.\n"
        )
        header = (
            f"{'codec':<8} {'(a) decode':>11} {'(b) field':>10} {'(c) +desc':>10} "
            f"{'(c+) +HOG':>10} {'(d) flow+desc':>14} {'(c)/(a)':>8} {'(c)/(d)':>8}"
        )
        print(header)
        print("-" * len(header))
        fast = {
            codec: best_fps(
                [plain_decode, motion_only, motion_and_descriptors, with_hog], path, args.repeat
            )
            for codec, path in clips.items()
        }
        # (d) last: what was measured after it ran slower (the state OpenCV leaves behind).
        for codec, path in clips.items():
            (a, b, c, e), (d,) = fast[codec], best_fps([flow_and_descriptors], path, 1)
            print(
                f"{codec:<8} {a:>9.0f}/s {b:>8.0f}/s {c:>8.0f}/s {e:>8.0f}/s {d:>12.0f}/s "
                f"{c / a:>8.2f} {c / d:>8.1f}"
            )
        if not args.skip_long:
            long_clip = folder / "long.mp4"
            frames = write_long_clip(long_clip, args.minutes)
            result = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(long_clip)],
                capture_output=True,
                text=True,
                check=True,
            )
            m = json.loads(result.stdout)
            print(
                f"\n{args.minutes:g}-minute clip ({frames} frames, H.264): (c) streaming peak RSS "
                f"{m['peak_bytes'] / 2**20:.0f} MiB (field {m['field_bytes'] / 2**20:.0f} MiB, "
                f"{m['cubes']} cubes), {m['frames'] / m['seconds']:.0f} frames/s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
