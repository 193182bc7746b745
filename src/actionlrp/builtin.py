"""The built-in labelled action dataset: synthetic clips of six actions with their ground truth.

Each clip is a scene of `actionlrp.synthetic`: an actor of about a person's size (a textured
rectangle, or two for ``wave``) performs one of `ACTION_CLASSES` during a known interval of
frames, among distractors and camera pan that every class shares, rendered with its exact dense
flow and encoded with a real encoder (`make_action_clip`); `make_dataset` writes a whole dataset
in the folder layout, the codecs (by default H.264 and MPEG-4 Part 2) taking turns clip by clip.
Its ground truth — the action, the interval, the box of the moving part of the actor in every
frame — is written as JSON beside each clip (`write_ground_truth`) and read back with
`load_ground_truth`, to score explanations against (`localisation_scores`).

Flow, frames and boxes follow the conventions of `actionlrp.synthetic`: boxes are half-open
``(y0, y1, x0, x1)`` in pixels, and ``flow[t]`` is the motion from frame ``t − 1`` to frame ``t``.
Same arguments, same seed → byte-identical clips and JSON with the same FFmpeg build.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from actionlrp.atomic import write_text_atomic
from actionlrp.errors import DatasetError
from actionlrp.flow import average_on_grid
from actionlrp.synthetic import (
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    SyntheticClip,
    SyntheticObject,
    _object_affine,
    make_clip,
)

if TYPE_CHECKING:
    from actionlrp.relevance import Explanation

#: The actions of the built-in dataset, in the order `make_dataset` takes them.
ACTION_CLASSES: tuple[str, ...] = ("pushups", "walk", "wave", "turn", "approach", "jump")

#: Version of the ground-truth JSON written beside each action clip.
GROUND_TRUTH_VERSION = 1

# The stamp in each ground-truth JSON and manifest. It names the module the dataset came from
# before it moved here: datasets already written keep loading, and new files stay the same.
_GENERATOR = "actionlrp.synthetic"
_MANIFEST = "dataset.json"
_SUFFIXES = {"libx264": ".mp4", "mpeg4": ".avi"}  # other encoders: .mkv
_REFERENCE_SIZE = (160, 120)  # (width, height) the sizes and speeds below are given for
_MIN_ACTION_FRAMES = 16
_PLACEMENT_TRIES = 50


@dataclass(frozen=True, kw_only=True)
class ActionClip(SyntheticClip):
    """A clip of the built-in action dataset: a `SyntheticClip` plus its label, where and when.

    The objects are the distractors first (drawn behind), then the actor's body and, for
    ``wave``, its raised arm. Only the actor moves during the action; the distractors move all
    the time, in every class alike, and the camera pan moves everything, the actor included.

    Attributes
    ----------
    action : str
        One of `ACTION_CLASSES`.
    interval : tuple of int
        ``(start, stop)``, half-open, in frames of the flow convention: the actor's own
        ground-truth flow is non-zero only on frames ``start ≤ t < stop`` (``flow[t]`` is the
        motion from ``t − 1`` to ``t``). The actor is at rest in the scene in frames
        ``0 … start − 1`` and ``stop − 1 … T − 1``. `make_action_clip` keeps
        ``2 ≤ start < stop ≤ T − 2``.
    actor_boxes : ndarray, shape (T, 4), int32
        ``(y0, y1, x0, x1)`` per frame, half-open, of the part of the actor that moves during the
        action, what an explanation should point at: the whole actor for every class but
        ``wave``, where it is the raised arm (the body stands still). Outside the interval, where
        that part rests.
    distractor_boxes : ndarray, shape (T, n_distractors, 4), int32
        ``(y0, y1, x0, x1)`` of each distractor per frame.
    seed : int
        The seed that `make_action_clip` was given: the same arguments give the same file.
    """

    action: str
    interval: tuple[int, int]
    actor_boxes: np.ndarray
    distractor_boxes: np.ndarray
    seed: int

    def ground_truth(self) -> GroundTruth:
        """The clip's `GroundTruth`, as `load_ground_truth` reads it back from the JSON."""
        return GroundTruth(
            path=self.path,
            action=self.action,
            interval=self.interval,
            actor_boxes=self.actor_boxes,
            distractor_boxes=self.distractor_boxes,
            fps=self.fps,
            width=self.width,
            height=self.height,
            codec=self.codec,
            b_frames=self.b_frames,
            pan=self.pan,
            seed=self.seed,
        )


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


@dataclass(frozen=True)
class DatasetInfo:
    """A built-in action dataset written by `make_dataset`.

    Attributes
    ----------
    root : Path
        ``OUT``: clips in ``OUT/train/<class>/`` and ``OUT/test/<class>/``, each with its
        ``<clip>.json`` ground truth beside it, and the manifest ``OUT/dataset.json``.
    classes : tuple of str
    train, test : tuple of Path
        The clips of each split, class by class.
    seconds : float
        Wall-clock time it took to generate.
    """

    root: Path
    classes: tuple[str, ...]
    train: tuple[Path, ...]
    test: tuple[Path, ...]
    seconds: float = 0.0

    @property
    def train_labels(self) -> tuple[str, ...]:
        """The class of each training clip (its folder's name)."""
        return tuple(p.parent.name for p in self.train)

    @property
    def test_labels(self) -> tuple[str, ...]:
        """The class of each test clip (its folder's name)."""
        return tuple(p.parent.name for p in self.test)


@dataclass(frozen=True)
class _ActionScene:
    objects: tuple[SyntheticObject, ...]
    pan: tuple[float, float]
    interval: tuple[int, int]
    moving: tuple[int, ...]  # indices into objects of the actor's moving parts
    distractors: tuple[int, ...]
    texture_seed: int


def make_action_clip(
    path: str | os.PathLike,
    action: str,
    *,
    seed: int,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    n_frames: int = 60,
    fps: float = 25,
    codec: str = "libx264",
    b_frames: int | None = None,
    pan: tuple[float, float] | None = None,
    max_pan: float = 0.5,
    n_distractors: int | None = None,
    ground_truth: bool = True,
    **encode_kw,
) -> ActionClip:
    """Render and encode one clip of an action, with its ground truth.

    The actor is a textured rectangle of about a person's size (28–40 px wide, 48–64 px tall in a
    160×120 frame) at a random place, which stays in view. It stands still, performs the action
    during a random interval of 50–75 % of the clip (with at least two still frames before it
    and after it), and stands still again. Per class, for a 160×120 frame (lengths and speeds
    scale with ``min(width / 160, height / 120)``):

    * ``pushups``: the actor lies (52–68 px long, 20–28 px thick) and swings by ±10–15° about
      its feet, 16–22 frames per push-up: the head end goes up and down by 10–15 px.
    * ``walk``: the actor crosses the frame left or right at 1.5–2.5 px per frame.
    * ``wave``: a raised forearm (14–18 px wide, 22–30 px tall) above one top corner of the
      still body swings sideways by ±8–12 px, 8–12 frames per swing.
    * ``turn``: the actor rotates by 180–300° in total, clockwise or not.
    * ``approach``: the actor, from 0.4 of its size, grows 2.8–3.4 times about a point a quarter
      of its height above its head, like a person walking towards a camera that looks down from
      above head height: the feet come down fast, the head a little.
    * ``jump``: the actor hops 24–34 px high, 16–22 frames per hop, ballistic: fastest at
      take-off and landing (4A / period ≈ 6 px per frame), still at the top.

    Periodic actions do whole cycles, so the actor ends where it started. The nuisance is the
    same in every class: random textures and tints; 1–2 small distractors (8–14 px) drifting at
    0.1–0.4 px per frame or oscillating by 2–4 px over 20–40 frames for the whole clip, away
    from the actor's path where there is room (else behind it); a camera pan of up to
    ``max_pan`` px per frame in a random direction (less in long clips, where the view drifts
    by at most a quarter of the frame).

    Parameters
    ----------
    path : path-like
        Output file; its suffix chooses the container (`make_clip`).
    action : str
        One of `ACTION_CLASSES`.
    seed : int
        Seed of everything random (≥ 0): same arguments, same file.
    width, height : int
        Frame size in pixels (even).
    n_frames : int
        Number of frames T (≥ 16).
    fps : float
        Frame rate in frames per second.
    codec : str
        FFmpeg encoder (`make_clip`).
    b_frames : int, optional
        B-frames between reference frames; default 2 for ``libx264`` and 0 for the others (FFmpeg
        exports MPEG-4 Part 2 B-frame vectors without their direct-mode part).
    pan : tuple of float, optional
        Camera pan ``(dx, dy)`` in px per frame; default random, up to ``max_pan``.
    max_pan : float
        Largest random pan in px per frame (before scaling with the frame size).
    n_distractors : int, optional
        Number of distractors; default 1 or 2 at random.
    ground_truth : bool
        Also write the ground truth beside the clip as ``<stem>.json`` (`write_ground_truth`).
    **encode_kw
        ``crf``, ``bit_rate``, ``preset``, ``gop_size``, ``encoder_options`` for `make_clip`.
        libx264 gets ``mbtree=0`` and ``refs=1`` unless ``encoder_options`` says otherwise:
        with x264's macroblock-tree rate control on, the same clip came out different in about
        one encode in ten; and FFmpeg exports H.264 vectors without their reference index, so
        with several reference frames a block predicted from 2 or 3 frames back reads as 2 or 3
        times its motion.

    Returns
    -------
    ActionClip

    Raises
    ------
    ValueError
        Unknown action, fewer than 16 frames, a negative seed, or a frame too small for the actor.
    """
    if action not in ACTION_CLASSES:
        raise ValueError(f"action must be one of {', '.join(ACTION_CLASSES)}, got {action!r}")
    if n_frames < _MIN_ACTION_FRAMES:
        raise ValueError(f"n_frames must be at least {_MIN_ACTION_FRAMES}, got {n_frames}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if n_distractors is not None and n_distractors < 0:
        raise ValueError(f"n_distractors must be >= 0, got {n_distractors}")
    if b_frames is None:
        b_frames = 2 if codec == "libx264" else 0
    if codec == "libx264":
        # mbtree=0: x264's macroblock-tree rate control made some of these clips differ from run
        # to run (same frames, one thread; about one encode in ten). refs=1: FFmpeg exports H.264
        # vectors without their reference index, so a block predicted from 2 or 3 frames back
        # reads as 2 or 3 times its motion.
        options = {"mbtree": "0", "refs": "1"}
        encode_kw["encoder_options"] = {**options, **(encode_kw.get("encoder_options") or {})}
    scene = _action_scene(
        action, np.random.default_rng(seed), width, height, n_frames, pan, max_pan, n_distractors
    )
    clip = make_clip(
        path,
        scene.objects,
        width=width,
        height=height,
        n_frames=n_frames,
        fps=fps,
        codec=codec,
        b_frames=b_frames,
        pan=scene.pan,
        seed=scene.texture_seed,
        **encode_kw,
    )
    result = ActionClip(
        path=clip.path,
        flow=clip.flow,
        boxes=clip.boxes,
        fps=clip.fps,
        width=clip.width,
        height=clip.height,
        codec=clip.codec,
        b_frames=clip.b_frames,
        pan=clip.pan,
        objects=clip.objects,
        action=action,
        interval=scene.interval,
        actor_boxes=_union_boxes(clip.boxes[:, list(scene.moving)]),
        distractor_boxes=np.ascontiguousarray(clip.boxes[:, list(scene.distractors)]),
        seed=int(seed),
    )
    if ground_truth:
        write_ground_truth(result)
    return result


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


def make_dataset(
    out: str | os.PathLike,
    *,
    classes: int = len(ACTION_CLASSES),
    clips_per_class: int = 12,
    test_fraction: float = 1 / 3,
    seed: int = 0,
    codecs: Sequence[str] = ("libx264", "mpeg4"),
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    n_frames: int = 60,
    fps: float = 25,
    b_frames: int | None = None,
    progress: bool = False,
) -> DatasetInfo:
    """Write the built-in labelled action dataset in the folder layout.

    ``OUT/train/<class>/<class>_<i>.<ext>`` and ``OUT/test/<class>/<class>_<i>.<ext>``, each
    clip with its ground truth ``<class>_<i>.json`` beside it (`write_ground_truth`), and the
    manifest ``OUT/dataset.json`` (the arguments and the clips of each split). The codecs take
    turns clip by clip (H.264 in ``.mp4``, MPEG-4 Part 2 in ``.avi``, any other encoder in
    ``.mkv``), so every class and split has each of them. Clip ``i`` of class ``c`` gets its own
    seed drawn from ``(seed, index of c in ACTION_CLASSES, i)``, stored in its JSON: the same
    arguments give byte-identical files.

    A previous dataset in ``OUT`` (as listed by its manifest) is replaced; any other file in
    ``OUT/train`` or ``OUT/test`` stops it before anything is written.

    Parameters
    ----------
    out : path-like
        The dataset's folder ``OUT``.
    classes : int
        Number of classes: the first ``classes`` of `ACTION_CLASSES`.
    clips_per_class : int
        Clips per class, both splits together.
    test_fraction : float
        Share of each class's clips in the test split (rounded; at least one clip stays in
        training).
    seed : int
        Seed of the whole dataset (≥ 0).
    codecs : sequence of str
        FFmpeg encoders, used in turn.
    width, height, n_frames, fps
        Size, length and rate of every clip (`make_action_clip`).
    b_frames : int, optional
        B-frames between reference frames; default per codec (`make_action_clip`).
    progress : bool
        Show a progress bar on stderr when it is a terminal.

    Returns
    -------
    DatasetInfo

    Raises
    ------
    ValueError
        ``classes`` outside 1 … len(ACTION_CLASSES), ``clips_per_class`` < 1, ``test_fraction``
        outside [0, 1), no codecs, or a negative seed.
    DatasetError
        ``OUT/train`` or ``OUT/test`` holds files that are not part of a previous dataset.
    """
    started = time.perf_counter()
    if not 1 <= classes <= len(ACTION_CLASSES):
        raise ValueError(f"classes must be between 1 and {len(ACTION_CLASSES)}, got {classes}")
    if clips_per_class < 1:
        raise ValueError(f"clips_per_class must be >= 1, got {clips_per_class}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if isinstance(codecs, str) or not codecs:
        raise ValueError(f"codecs must be a non-empty sequence of encoder names, got {codecs!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    root = Path(out)
    names = ACTION_CLASSES[:classes]
    n_test = min(int(clips_per_class * test_fraction + 0.5), clips_per_class - 1)
    plan = []  # (split, action, class index, clip index, codec, relative path)
    for c, action in enumerate(names):
        for i in range(clips_per_class):
            split = "train" if i < clips_per_class - n_test else "test"
            codec = codecs[i % len(codecs)]
            name = f"{action}_{i:03d}{_SUFFIXES.get(codec, '.mkv')}"
            plan.append((split, action, c, i, codec, Path(split, action, name)))
    manifest = {
        "generator": _GENERATOR,
        "version": GROUND_TRUTH_VERSION,
        "complete": False,
        "classes": list(names),
        "clips_per_class": clips_per_class,
        "test_fraction": test_fraction,
        "seed": seed,
        "codecs": list(codecs),
        "width": width,
        "height": height,
        "n_frames": n_frames,
        "fps": float(fps),
        "b_frames": b_frames,
        "train": [p[-1].as_posix() for p in plan if p[0] == "train"],
        "test": [p[-1].as_posix() for p in plan if p[0] == "test"],
    }
    _remove_previous_dataset(root)
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(root / _MANIFEST, _json_lines(manifest))
    bar = tqdm(total=len(plan), desc="synth", unit="clip", disable=None if progress else True)
    with bar:
        for _, action, c, i, codec, relative in plan:
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            clip_seed = int(np.random.SeedSequence([seed, c, i]).generate_state(1)[0])
            make_action_clip(
                path,
                action,
                seed=clip_seed,
                width=width,
                height=height,
                n_frames=n_frames,
                fps=fps,
                codec=codec,
                b_frames=b_frames,
            )
            bar.update()
    manifest["complete"] = True
    write_text_atomic(root / _MANIFEST, _json_lines(manifest))
    return DatasetInfo(
        root=root,
        classes=names,
        train=tuple(root / p[-1] for p in plan if p[0] == "train"),
        test=tuple(root / p[-1] for p in plan if p[0] == "test"),
        seconds=time.perf_counter() - started,
    )


def _remove_previous_dataset(root: Path) -> None:
    """Delete the clips and JSON of the dataset listed in ``root/dataset.json``, if that is all
    ``root/train`` and ``root/test`` hold; raise `DatasetError` (deleting nothing) otherwise."""
    listed: set[Path] = set()
    manifest = root / _MANIFEST
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("generator") == _GENERATOR:
                for relative in [*data.get("train", []), *data.get("test", [])]:
                    clip = root / relative
                    listed.update({clip, clip.with_suffix(".json")})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            pass
    present = [
        p
        for split in ("train", "test")
        if (root / split).is_dir()
        for p in sorted((root / split).rglob("*"))
        if not p.is_dir()
    ]
    foreign = [p for p in present if p not in listed]
    if foreign:
        raise DatasetError(
            f"{root}: {foreign[0].relative_to(root)} is not part of a dataset made by "
            "make_dataset; choose an empty folder"
        )
    for p in present:
        p.unlink()
    for split in ("train", "test"):
        folder = root / split
        if folder.is_dir():
            for sub in sorted(folder.iterdir()):
                if sub.is_dir() and not any(sub.iterdir()):
                    sub.rmdir()


def _action_scene(
    action: str,
    rng: np.random.Generator,
    width: int,
    height: int,
    n_frames: int,
    pan: tuple[float, float] | None,
    max_pan: float,
    n_distractors: int | None,
) -> _ActionScene:
    """Draw an action scene: the pan, the interval, the actor and the distractors, placed."""
    unit = min(width / _REFERENCE_SIZE[0], height / _REFERENCE_SIZE[1])
    if pan is None:
        angle = rng.uniform(0.0, 2.0 * math.pi)
        drift = 0.25 * min(width, height) / max(n_frames - 1, 1)  # px per frame
        speed = rng.uniform(0.0, min(max_pan * unit, drift))
        pan = (speed * math.cos(angle), speed * math.sin(angle))
    pan = (float(pan[0]), float(pan[1]))
    length = round(rng.uniform(0.5, 0.75) * n_frames)
    start = int(rng.integers(2, max(2, n_frames - length - 2) + 1))
    interval = (start, start + length)
    margin = 2.0 * unit
    still = (0.0, 0.0)  # overlaps are judged in the scene: the pan moves everything alike
    for _ in range(_PLACEMENT_TRIES):
        actor, moving = _actor(action, rng, unit, interval)
        offset = _fit(rng, _extent(actor, n_frames, pan), width, height, margin)
        if offset is not None:
            break
    else:
        raise ValueError(
            f"no room for the actor of {action!r} in a {width}×{height} frame over {n_frames} "
            f"frames with a pan of {pan} px per frame; use a larger frame or less pan"
        )
    actor = [_shifted(obj, offset) for obj in actor]
    taken = [_extent(actor, n_frames, still)]
    distractors = []
    count = int(rng.integers(1, 3)) if n_distractors is None else n_distractors
    for _ in range(count):
        candidate = _distractor(rng, unit)
        extent, path = _extent([candidate], n_frames, pan), _extent([candidate], n_frames, still)
        placed = None
        for _ in range(_PLACEMENT_TRIES):
            offset = _fit(rng, extent, width, height, margin)
            if offset is None:
                break
            placed = offset
            if not any(_overlap(path + np.tile(offset, 2), other, 2.0 * margin) for other in taken):
                break  # else the last try stays, drawn behind the actor
        if placed is not None:
            distractors.append(_shifted(candidate, placed))
            taken.append(path + np.tile(placed, 2))
    n = len(distractors)
    return _ActionScene(
        objects=(*distractors, *actor),
        pan=pan,
        interval=interval,
        moving=tuple(n + k for k in moving),
        distractors=tuple(range(n)),
        texture_seed=int(rng.integers(2**31)),
    )


def _actor(
    action: str, rng: np.random.Generator, unit: float, interval: tuple[int, int]
) -> tuple[list[SyntheticObject], list[int]]:
    """The actor's objects around (0, 0) in frame 0, and which of them move during the action.

    Lengths are drawn for a 160×120 frame and scaled by ``unit``.
    """
    length = interval[1] - interval[0]
    # Objects move from frame start − 1 to frame stop − 1: their flow is non-zero on the interval.
    timing = {"start": interval[0] - 1, "stop": interval[1] - 1}
    origin = (0.0, 0.0)

    def px(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi)) * unit

    def side(lo: float, hi: float) -> int:
        return max(2, round(px(lo, hi)))

    sign = float(rng.choice((-1.0, 1.0)))
    standing = (side(48.0, 64.0), side(28.0, 40.0))  # (height, width)
    if action == "pushups":  # lying, the body swings about the feet: the head end goes up and down
        lying = (side(20.0, 28.0), side(52.0, 68.0))
        period = _whole_cycles(length, rng.uniform(16.0, 22.0))
        feet = float(rng.choice((0.0, 1.0)))  # facing right or left
        body = SyntheticObject(
            "swing",
            lying,
            origin,
            amplitude=sign * rng.uniform(10.0, 15.0),
            period=period,
            pivot=(feet, 0.5),
            **timing,
        )
        return [body], [0]
    if action == "walk":
        velocity = (sign * px(1.5, 2.5), 0.0)
        return [SyntheticObject("translate", standing, origin, velocity=velocity, **timing)], [0]
    if action == "wave":  # a raised forearm and hand at a top corner swings; the body stays
        height, width = standing
        arm = (side(22.0, 30.0), side(14.0, 18.0))
        period = _whole_cycles(length, rng.uniform(8.0, 12.0))
        arm_centre = (
            float(rng.choice((-1.0, 1.0))) * width / 2.0,
            -(height + arm[0]) / 2.0 + 4.0 * unit,
        )
        body = SyntheticObject("still", standing, origin)
        swing = SyntheticObject(
            "oscillate",
            arm,
            arm_centre,
            amplitude=sign * px(8.0, 12.0),
            period=period,
            axis="x",
            **timing,
        )
        return [body, swing], [1]
    if action == "turn":
        rate = sign * rng.uniform(180.0, 300.0) / length
        return [SyntheticObject("rotate", standing, origin, degrees_per_frame=rate, **timing)], [0]
    if action == "approach":  # grows from far away; the camera above the head looks down
        growth = rng.uniform(2.8, 3.4)
        small = (max(2, round(0.4 * standing[0])), max(2, round(0.4 * standing[1])))
        body = SyntheticObject(
            "grow",
            small,
            origin,
            scale_per_frame=growth ** (1.0 / length),
            pivot=(0.5, -0.25),
            **timing,
        )
        return [body], [0]
    if action == "jump":  # high and fast
        period = _whole_cycles(length, rng.uniform(16.0, 22.0))
        body = SyntheticObject(
            "bounce", standing, origin, amplitude=px(24.0, 34.0), period=period, **timing
        )
        return [body], [0]
    raise ValueError(f"action must be one of {', '.join(ACTION_CLASSES)}, got {action!r}")


def _distractor(rng: np.random.Generator, unit: float) -> SyntheticObject:
    """A small object around (0, 0) that drifts or oscillates slowly for the whole clip."""
    size = (
        max(2, round(rng.uniform(8.0, 14.0) * unit)),
        max(2, round(rng.uniform(8.0, 14.0) * unit)),
    )
    if rng.random() < 0.5:
        angle = rng.uniform(0.0, 2.0 * math.pi)
        speed = rng.uniform(0.1, 0.4) * unit
        velocity = (speed * math.cos(angle), speed * math.sin(angle))
        return SyntheticObject("translate", size, (0.0, 0.0), velocity=velocity)
    return SyntheticObject(
        "oscillate",
        size,
        (0.0, 0.0),
        amplitude=rng.uniform(2.0, 4.0) * unit,
        period=rng.uniform(20.0, 40.0),
        axis=str(rng.choice(("x", "y"))),
    )


def _whole_cycles(length: int, period: float) -> float:
    """The period nearest to ``period`` that fits a whole number of cycles into ``length``."""
    return length / max(1, round(length / period))


def _extent(
    objects: Sequence[SyntheticObject], n_frames: int, pan: tuple[float, float]
) -> np.ndarray:
    """``(x0, y0, x1, y1)``: the region the objects' outlines sweep over the clip, in pixels
    (pixel edges: a pixel ``x`` spans ``[x − ½, x + ½]``)."""
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for obj in objects:
        h, w = obj.shape
        corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])
        for t in range(n_frames):
            affine = _object_affine(obj, t, (0.0, 0.0), pan[0], pan[1])
            image = corners @ affine[:, :2].T + affine[:, 2]
            lo = np.minimum(lo, image.min(axis=0))
            hi = np.maximum(hi, image.max(axis=0))
    return np.concatenate([lo, hi])


def _fit(
    rng: np.random.Generator, extent: np.ndarray, width: int, height: int, margin: float
) -> np.ndarray | None:
    """A random shift ``(dx, dy)`` that keeps ``extent`` ``margin`` px inside the frame."""
    lo = np.array([-0.5, -0.5]) + margin - extent[:2]
    hi = np.array([width - 0.5, height - 0.5]) - margin - extent[2:]
    if np.any(lo > hi):
        return None
    return rng.uniform(lo, hi)


def _overlap(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    """Whether two ``(x0, y0, x1, y1)`` regions come closer than ``gap`` px."""
    return bool(np.all(a[:2] < b[2:] + gap) and np.all(b[:2] < a[2:] + gap))


def _shifted(obj: SyntheticObject, offset: np.ndarray) -> SyntheticObject:
    cx, cy = obj.centre if obj.centre is not None else (0.0, 0.0)
    return replace(obj, centre=(cx + float(offset[0]), cy + float(offset[1])))


def _union_boxes(boxes: np.ndarray) -> np.ndarray:
    """(T, k, 4) boxes → (T, 4): the box around the non-empty ones of each frame."""
    out = np.zeros((boxes.shape[0], 4), dtype=np.int32)
    for t, frame in enumerate(boxes):
        full = frame[(frame[:, 1] > frame[:, 0]) & (frame[:, 3] > frame[:, 2])]
        if len(full):
            out[t] = (full[:, 0].min(), full[:, 1].max(), full[:, 2].min(), full[:, 3].max())
    return out


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
