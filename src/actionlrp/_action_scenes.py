"""The scenes of the built-in action dataset (`actionlrp.builtin`): for each of `ACTION_CLASSES`,
an actor made of objects of `actionlrp.synthetic` that performs the action during a random
interval of frames, placed at random where it stays in view, with distractors kept off its path
where there is room and a camera pan that every class shares. Everything is drawn from one
random generator, so a seed gives one scene. Lengths and speeds are drawn for a 160×120 frame
and scaled with the frame's size; `actionlrp.builtin.make_action_clip` says what each action
looks like and renders the scene.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from actionlrp.synthetic import SyntheticObject, _object_affine

#: The actions of the built-in dataset, in the order `make_dataset` takes them.
ACTION_CLASSES: tuple[str, ...] = ("pushups", "walk", "wave", "turn", "approach", "jump")
_REFERENCE_SIZE = (160, 120)  # (width, height) the sizes and speeds below are given for
_PLACEMENT_TRIES = 50


@dataclass(frozen=True)
class _ActionScene:
    objects: tuple[SyntheticObject, ...]
    pan: tuple[float, float]
    interval: tuple[int, int]
    moving: tuple[int, ...]  # indices into objects of the actor's moving parts
    distractors: tuple[int, ...]
    texture_seed: int


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
