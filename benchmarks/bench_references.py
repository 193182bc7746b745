"""H.264 reference distances: flow error with several reference frames, before and after.

FFmpeg exports no reference index, so a vector to a picture two frames back used to read as
twice the speed. Now each block's reference picture is found in the decoded pixels
(`actionlrp.references`). On generated clips with known motion, encoded by x264 with
``ref`` = 1, 3, 5, without B-frames and with 3 B-frames, B-pyramid off and on:

* band: a textured band a third of the picture high moving right at 3 px/frame (the mean flow
  over the picture is 1.0 px/frame);
* square: a 48-px textured square moving (1.5, −0.75) px/frame.

Prints the end-point error (px/frame) over the object's interior cells (8 px in from its edge,
frames 1 … T − 2, as the tests measure it), and the band's mean flow over the picture, with the
distances from the picture structure alone ("before") and with the references matched
("after").

    python benchmarks/bench_references.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from actionlrp import codec, synthetic
from actionlrp.codec import read_motion_field
from actionlrp.synthetic import SyntheticObject, ground_truth_on_grid
from actionlrp.video import grid_size

CELL = 8
LAYOUTS = [(0, "none"), (3, "none"), (3, "normal")]  # (B-frames, B-pyramid)
REFS = (1, 3, 5)


def band(path: Path, params: str, b_frames: int) -> synthetic.SyntheticClip:
    obj = SyntheticObject("translate", size=(40, 480), centre=(80.0, 60.0), velocity=(3.0, 0.0))
    options = {"x264-params": params}
    return synthetic.make_clip(path, [obj], n_frames=40, b_frames=b_frames, encoder_options=options)


def square(path: Path, params: str, b_frames: int) -> synthetic.SyntheticClip:
    options = {"x264-params": params}
    return synthetic.moving_square_clip(
        path, vx=1.5, vy=-0.75, n_frames=40, b_frames=b_frames, encoder_options=options
    )


def interior(clip: synthetic.SyntheticClip, margin: int = 8) -> np.ndarray:
    """(T, gh, gw) True on cells wholly inside the object, ``margin`` px in; frames 1 … T − 2."""
    gh, gw = grid_size(clip.height, clip.width, CELL)
    rows, cols = np.arange(gh) * CELL, np.arange(gw) * CELL
    y0, y1, x0, x1 = (clip.boxes[:, 0, i][:, None] for i in range(4))
    inside_y = (rows >= y0 + margin) & (rows + CELL <= y1 - margin)
    inside_x = (cols >= x0 + margin) & (cols + CELL <= x1 - margin)
    mask = inside_y[:, :, None] & inside_x[:, None, :]
    mask[0] = mask[-1] = False
    return mask


def structural(path: Path):
    """The field with the distances from the picture structure only (before the match)."""
    original = codec.reference_candidates
    codec.reference_candidates = lambda extradata: 1
    try:
        return read_motion_field(path)
    finally:
        codec.reference_candidates = original


def main() -> int:
    print(__doc__.split("\n\n")[0], end="\n\n")
    header = (
        f"{'scene':<7} {'B-frames':>8} {'pyramid':>8} {'ref':>4} "
        f"{'EPE before':>11} {'EPE after':>10} {'mean before':>12} {'mean after':>11}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="actionlrp-refs-") as tmp:
        for name, make in (("band", band), ("square", square)):
            for b_frames, pyramid in LAYOUTS:
                for ref in REFS:
                    path = Path(tmp) / f"{name}_{b_frames}_{pyramid}_{ref}.mp4"
                    clip = make(path, f"ref={ref}:b-pyramid={pyramid}", b_frames)
                    truth = ground_truth_on_grid(clip, CELL)
                    mask = interior(clip)
                    row = []
                    for field in (structural(path), read_motion_field(path)):
                        epe = np.linalg.norm(field.flow - truth, axis=-1)[mask].mean()
                        row.append((float(epe), field.mean_flow()[0]))
                    worst = max(worst, row[1][0]) if name == "band" else worst
                    means = f"{row[0][1]:>12.2f} {row[1][1]:>11.2f}" if name == "band" else ""
                    line = (
                        f"{name:<7} {b_frames:>8} {pyramid if b_frames else '-':>8} {ref:>4} "
                        f"{row[0][0]:>11.3f} {row[1][0]:>10.3f} {means}"
                    )
                    print(line.rstrip())
    print(f"\nlargest EPE after, band: {worst:.3f} px/frame (target ≤ 0.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
