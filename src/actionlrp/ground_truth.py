"""The ground truth of the built-in dataset's clips (`actionlrp.builtin`), and how well an
explanation points at it (design §6).

`GroundTruth` is what is known about an action clip: its action, the interval of frames it
happens in, and in every frame the box of the actor's moving part and of each distractor.
`write_ground_truth` writes it as JSON beside the clip, and `load_ground_truth` reads it back.
`localisation_scores` measures how much of an explanation's relevance falls on the actor during
the action (`LOCALISATION_KEYS`). Boxes are half-open ``(y0, y1, x0, x1)`` in pixels, as in
`actionlrp.synthetic`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actionlrp.atomic import write_text_atomic
from actionlrp.errors import DatasetError
from actionlrp.flow import average_on_grid

if TYPE_CHECKING:
    from actionlrp.builtin import ActionClip
    from actionlrp.relevance import Explanation

#: Version of the ground-truth JSON written beside each action clip.
GROUND_TRUTH_VERSION = 1

# The stamp in each ground-truth JSON and manifest. It names the module the dataset came from
# before it moved to `actionlrp.builtin`: datasets already written keep loading, and new files
# stay the same.
_GENERATOR = "actionlrp.synthetic"


@dataclass(frozen=True)
class GroundTruth:
    """What is known about an action clip: the label, when the action happens, where the actor is.

    Attributes
    ----------
    path : Path
        The clip.
    action : str
    interval : tuple of int
        ``(start, stop)``: the frames on which the actor's own flow is non-zero (`ActionClip`).
    actor_boxes : ndarray, shape (T, 4), int32
        ``(y0, y1, x0, x1)`` of the actor's moving part(s) per frame, half-open, in pixels.
    distractor_boxes : ndarray, shape (T, n_distractors, 4), int32
    fps : float
    width, height : int
        Frame size in pixels.
    codec : str
        FFmpeg encoder the clip was made with.
    b_frames : int
    pan : tuple of float
        Camera pan ``(dx, dy)`` in pixels per frame: the flow of the background, and the flow of
        the actor outside the interval.
    seed : int
        `make_action_clip`'s seed: ``make_action_clip(path, action, seed=seed, width=width,
        height=height, n_frames=n_frames, fps=fps, codec=codec, b_frames=b_frames)`` makes the
        same file again.
    """

    path: Path
    action: str
    interval: tuple[int, int]
    actor_boxes: np.ndarray
    distractor_boxes: np.ndarray
    fps: float
    width: int
    height: int
    codec: str
    b_frames: int
    pan: tuple[float, float]
    seed: int

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.actor_boxes.shape[0])

    def in_interval(self) -> np.ndarray:
        """(T,) bool: True on the frames of the action."""
        frames = np.arange(self.n_frames)
        return (frames >= self.interval[0]) & (frames < self.interval[1])

    def actor_mask(self, cell: int = 1, margin: int = 0) -> np.ndarray:
        """Share of each grid cell inside the actor box, per frame.

        Parameters
        ----------
        cell : int
            Grid cell in pixels; 1 gives a per-pixel mask, 8 the grid of a default `MotionField`.
        margin : int
            Pixels added to every side of the box (e.g. 16: one macroblock, the finest unit a
            codec's motion vectors resolve).

        Returns
        -------
        ndarray, shape (T, gh, gw), float32
            In [0, 1]: the fraction of the cell's pixels inside the actor box of frame ``t``.
        """
        grown = self.actor_boxes + np.array([-margin, margin, -margin, margin])
        mask = _box_masks(grown, self.height, self.width)
        if cell == 1:
            return mask.astype(np.float32)
        return average_on_grid(mask[..., None], cell)[..., 0]


def write_ground_truth(clip: ActionClip) -> Path:
    """Write a clip's ground truth as JSON beside it, ``<stem>.json``, and return that path.

    The JSON object has the keys ``generator`` (``"actionlrp.synthetic"``), ``version``
    (`GROUND_TRUTH_VERSION`), ``clip`` (the clip's file name), ``action``, ``interval``
    (``[start, stop]``), ``n_frames``, ``fps``, ``width``, ``height``, ``codec``, ``b_frames``,
    ``pan`` (``[dx, dy]`` px per frame), ``seed``, ``box_format`` (a reminder of the next two),
    ``actor_boxes`` (``[[y0, y1, x0, x1], …]``, one per frame) and ``distractor_boxes`` (one
    list of such boxes per frame).
    """
    data = {
        "generator": _GENERATOR,
        "version": GROUND_TRUTH_VERSION,
        "clip": clip.path.name,
        "action": clip.action,
        "interval": [int(clip.interval[0]), int(clip.interval[1])],
        "n_frames": clip.n_frames,
        "fps": float(clip.fps),
        "width": int(clip.width),
        "height": int(clip.height),
        "codec": clip.codec,
        "b_frames": int(clip.b_frames),
        "pan": [float(clip.pan[0]), float(clip.pan[1])],
        "seed": int(clip.seed),
        "box_format": "y0, y1, x0, x1: half-open pixel rows and columns, one box per frame",
        "actor_boxes": clip.actor_boxes.tolist(),
        "distractor_boxes": clip.distractor_boxes.tolist(),
    }
    path = clip.path.with_suffix(".json")
    write_text_atomic(path, _json_lines(data))
    return path


def load_ground_truth(clip_path: str | os.PathLike) -> GroundTruth:
    """Read the ground truth written beside an action clip.

    Parameters
    ----------
    clip_path : path-like
        The clip (``…/walk_003.mp4``) or its JSON (``…/walk_003.json``).

    Returns
    -------
    GroundTruth

    Raises
    ------
    DatasetError
        The JSON is missing, not JSON, or not an action clip's ground truth.
    """
    json_path = Path(clip_path).with_suffix(".json")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"{json_path}: no ground truth beside the clip; make clips with make_action_clip "
            "or make_dataset"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{json_path}: not readable as JSON ({exc})") from None
    try:
        if not isinstance(data, dict) or data.get("generator") != _GENERATOR:
            raise ValueError("not the ground truth of an actionlrp action clip")
        if data.get("version") != GROUND_TRUTH_VERSION:
            raise ValueError(
                f"ground-truth version {data.get('version')!r}, this reader knows "
                f"{GROUND_TRUTH_VERSION}; regenerate the dataset"
            )
        actor_boxes = np.asarray(data["actor_boxes"], dtype=np.int32)
        n_frames = int(data["n_frames"])
        distractor_boxes = np.asarray(data["distractor_boxes"], dtype=np.int32).reshape(
            n_frames, -1, 4
        )
        start, stop = (int(v) for v in data["interval"])
        truth = GroundTruth(
            path=json_path.with_name(str(data["clip"])),
            action=str(data["action"]),
            interval=(start, stop),
            actor_boxes=actor_boxes,
            distractor_boxes=distractor_boxes,
            fps=float(data["fps"]),
            width=int(data["width"]),
            height=int(data["height"]),
            codec=str(data["codec"]),
            b_frames=int(data["b_frames"]),
            pan=(float(data["pan"][0]), float(data["pan"][1])),
            seed=int(data["seed"]),
        )
        if actor_boxes.shape != (n_frames, 4):
            raise ValueError(f"actor_boxes has shape {actor_boxes.shape}, expected ({n_frames}, 4)")
        if not 0 <= start <= stop <= n_frames:
            raise ValueError(f"interval [{start}, {stop}) is not inside the {n_frames} frames")
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise DatasetError(f"{json_path}: {reason}") from None
    return truth


def _box_masks(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, 4) boxes → (T, height, width) bool masks."""
    rows, cols = np.arange(height), np.arange(width)
    y0, y1, x0, x1 = (boxes[:, k, None] for k in range(4))
    inside_rows = (rows >= y0) & (rows < y1)
    inside_cols = (cols >= x0) & (cols < x1)
    return inside_rows[:, :, None] & inside_cols[:, None, :]


def _json_lines(data: dict) -> str:
    """JSON with one top-level key per line (long lists stay on their line)."""
    lines = [
        f"  {json.dumps(k)}: {json.dumps(v, separators=(', ', ': '))}" for k, v in data.items()
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


# --------------------------------------------------------------------------------------------
# Scoring explanations against the ground truth

#: The keys of `localisation_scores`' result.
LOCALISATION_KEYS: tuple[str, ...] = (
    "mass_on_actor",
    "mass_near_actor",
    "pointing_game",
    "top_frames_in_interval",
)


def localisation_scores(
    explanation: Explanation, truth: GroundTruth, cell: int
) -> dict[str, float]:
    """How well an explanation points at the action its clip's ground truth knows (design §6).

    Parameters
    ----------
    explanation : Explanation
        An explanation of the clip; only its ``relevance_voxels`` (R(1), shape (T, gh, gw)) and
        ``top_frames(k)`` are read. Its T frames are the clip's first T (the motion field may
        end before the last frame).
    truth : GroundTruth
        The clip's ground truth (`load_ground_truth`).
    cell : int
        The grid cell in pixels of the motion field the explanation is on.

    Returns
    -------
    dict
        The four scores of `LOCALISATION_KEYS`, each in [0, 1]:

        * ``mass_on_actor``: share of the positive R(1) inside the actor's box during the action
          interval (relevance mass accuracy), a cell the box edge cuts counting by the share of
          its pixels inside; 0 when no R(1) is positive.
        * ``mass_near_actor``: the same with the box grown by one 16-px macroblock, the
          resolution of the motion vectors.
        * ``pointing_game``: 1 if the voxel of highest R(1) is in a cell that the actor's box
          reaches, on a frame of the interval; else 0.
        * ``top_frames_in_interval``: share of the top 10 % frames by r_t (``top_frames``,
          rounded, at least one) that lie in the interval.
    """
    r1 = explanation.relevance_voxels
    t = r1.shape[0]
    target = truth.actor_mask(cell)[:t] * truth.in_interval()[:t, None, None]
    positive = np.clip(r1, 0.0, None)
    total = positive.sum()
    peak = np.unravel_index(int(np.argmax(r1)), r1.shape)
    k = max(1, int(round(0.1 * t)))
    top = explanation.top_frames(k)
    near = truth.actor_mask(cell, margin=16)[:t] * truth.in_interval()[:t, None, None]
    return {
        "mass_on_actor": float((positive * target).sum() / total) if total > 0 else 0.0,
        "mass_near_actor": float((positive * near).sum() / total) if total > 0 else 0.0,
        "pointing_game": float(target[peak] > 0),
        "top_frames_in_interval": float(truth.in_interval()[top].mean()),
    }
