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

The scenes of the actions are drawn in `actionlrp._action_scenes`; the ground truth and the
scores are `actionlrp.ground_truth` (and importable from here too).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from actionlrp._action_scenes import ACTION_CLASSES, _action_scene
from actionlrp.atomic import write_text_atomic
from actionlrp.errors import DatasetError
from actionlrp.ground_truth import (
    _GENERATOR,
    GROUND_TRUTH_VERSION,
    GroundTruth,
    _json_lines,
    write_ground_truth,
)
from actionlrp.ground_truth import LOCALISATION_KEYS as LOCALISATION_KEYS
from actionlrp.ground_truth import load_ground_truth as load_ground_truth
from actionlrp.ground_truth import localisation_scores as localisation_scores
from actionlrp.synthetic import (
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    SyntheticClip,
    make_clip,
)

_MANIFEST = "dataset.json"
_SUFFIXES = {"libx264": ".mp4", "mpeg4": ".avi"}  # other encoders: .mkv
_MIN_ACTION_FRAMES = 16


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


def _union_boxes(boxes: np.ndarray) -> np.ndarray:
    """(T, k, 4) boxes → (T, 4): the box around the non-empty ones of each frame."""
    out = np.zeros((boxes.shape[0], 4), dtype=np.int32)
    for t, frame in enumerate(boxes):
        full = frame[(frame[:, 1] > frame[:, 0]) & (frame[:, 3] > frame[:, 2])]
        if len(full):
            out[t] = (full[:, 0].min(), full[:, 1].max(), full[:, 2].min(), full[:, 3].max())
    return out
