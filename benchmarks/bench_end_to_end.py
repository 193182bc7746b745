"""Recognition end to end from the file: motion field + descriptors + Fisher vectors + SVM.

Generates 24 clips of 320×240, 150 frames at 25 fps (12 MPEG-4 Part 2, 12 H.264 with 2
B-frames; two classes of motion), trains a model on half of them at the defaults, then scores
the other half with an empty descriptor cache — decoding, field, descriptors, encoding and the
SVM, as `actionlrp evaluate` runs — and prints video frames per second. Each option of
issue 14 is timed the same way beside the defaults. The issue's target: ≥ 1,000 frames/s at
the defaults on this 2-core machine.

    python benchmarks/bench_end_to_end.py [--repeat 2] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from actionlrp import synthetic
from actionlrp.descriptors import DescriptorParams
from actionlrp.model import ActionModel
from actionlrp.synthetic import SyntheticObject

WIDTH, HEIGHT, FRAMES, FPS = 320, 240, 150, 25
OPTIONS = {  # the model's parameters beside the defaults
    "defaults": {},
    "slice normalisation": {"descriptor_params": DescriptorParams(slice_normalization=True)},
    "two scales (32 @ 16, 48 @ 24 px)": {
        "descriptor_params": DescriptorParams(cube_px=(32, 48), stride_px=(16, 24))
    },
    "space-time pyramid": {"pyramid": True},
    "motion only (no HOG)": {"descriptor_params": DescriptorParams(hog=False)},
}


def make_clips(folder: Path) -> tuple[list[Path], list[str]]:
    paths, labels = [], []
    for i in range(24):
        label = ("sideways", "upwards")[i % 2]
        velocity = (2.5, 0.0) if label == "sideways" else (0.0, -2.5)
        objects = [
            SyntheticObject("translate", size=48, centre=(60.0 + 5 * i, 150.0), velocity=velocity),
            SyntheticObject("oscillate", size=40, amplitude=20.0, period=30.0, axis="x"),
        ]
        codec, suffix, b = ("mpeg4", ".avi", 0) if i % 4 < 2 else ("libx264", ".mp4", 2)
        clip = synthetic.make_clip(
            folder / f"{label}_{i:02d}{suffix}",
            objects,
            width=WIDTH,
            height=HEIGHT,
            n_frames=FRAMES,
            fps=FPS,
            codec=codec,
            b_frames=b,
            seed=i,
        )
        paths.append(clip.path)
        labels.append(label)
    return paths, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=list(OPTIONS), default=list(OPTIONS))
    args = parser.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths, labels = make_clips(Path(tmp))
        train_rows = [i for i in range(len(paths)) if i % 8 < 4]  # both classes, both codecs
        train = [paths[i] for i in train_rows]
        train_labels = [labels[i] for i in train_rows]
        test = [p for i, p in enumerate(paths) if i % 8 >= 4]
        for name in args.only:
            best = float("inf")
            for round_ in range(args.repeat + 1):
                cache = Path(tmp) / f"cache-{len(report)}-{round_}"
                model = ActionModel(**OPTIONS[name], cache_dir=cache, progress=False)
                if round_ == 0:  # the model once per option; its cache is not reused below
                    fitted = model.fit(train, train_labels)
                    continue
                fitted.cache_dir = cache
                start = time.perf_counter()
                fitted.decision_function(test)
                best = min(best, time.perf_counter() - start)
            frames = FRAMES * len(test)
            report[name] = {"seconds": round(best, 3), "frames_per_second": round(frames / best)}
            print(f"{name:<34} {frames / best:7.0f} frames/s ({best:.2f} s)", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
