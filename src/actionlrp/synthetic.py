"""Synthetic clips with known motion, encoded with PyAV: the ground truth the tests check against.

A scene is a still textured background seen by a camera that may pan, and textured rectangular
objects in front of it, each with one kind of motion (translate, oscillate, rotate, grow, bounce,
swing, still) during an interval of frames. Every frame is rendered with sub-pixel accurate geometry
(bilinear `cv2.warpAffine` from textures larger than the frame), so the dense flow of every pixel
is known exactly, and encoded with a real encoder (libx264, MPEG-4 Part 2, or any FFmpeg encoder
that takes yuv420p).

The built-in labelled action dataset, made of such scenes, is `actionlrp.builtin`.

Conventions
-----------
* Coordinates are ``(x, y)`` in pixels, y down, pixel ``(x, y)`` centred on the integer point.
  Velocities, pan and flow are ``(dx, dy)`` in pixels per frame.
* Flow of frame ``t`` at pixel ``(y, x)``: the motion from frame ``t − 1`` to frame ``t`` of the
  content seen there in frame ``t``, i.e. where it is in frame ``t`` minus where it was in frame
  ``t − 1`` (the convention of `actionlrp.video.MotionField`). Frame 0 has no previous frame: its
  flow is the step from the frame ``−1`` the scene model would have shown before, a copy of frame
  1's flow while the motion is constant (translation, pan), the continued rotation / zoom /
  oscillation otherwise, and zero for an object whose motion starts later.
* A pixel of frame ``t`` belongs to the top-most object whose rendered coverage there in frame
  ``t`` is at least one half; every other pixel belongs to the background, whose flow is the pan.
* Boxes are half-open ``(y0, y1, x0, x1)``: the pixels whose centres lie inside the object's
  half-open axis-aligned bounding box ``[min, max)``, clipped to the frame (empty, ``y0 == y1``
  or ``x0 == x1``, when the object is out of view).

The encoders get fixed options that make the output a function of the inputs only: x264 runs with
one thread (its output depends on the thread count, which FFmpeg otherwise picks from the
machine's cores) and every muxer with ``fflags=+bitexact`` (Matroska otherwise writes a random
segment UID). Same arguments, same seed → byte-identical file with the same FFmpeg build —
except that x264's macroblock-tree rate control (on by default) was seen to make some scenes come
out differently in about one encode in ten; `actionlrp.builtin.make_action_clip` turns it off
(``mbtree=0``), and ``encoder_options={"mbtree": "0"}`` does the same for `make_clip`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from actionlrp.flow import average_on_grid

MOTIONS = ("translate", "oscillate", "rotate", "grow", "bounce", "swing", "still")

#: Container formats by file suffix.
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".avi": "avi", ".mkv": "matroska"}

DEFAULT_WIDTH = 160
DEFAULT_HEIGHT = 120
DEFAULT_FRAMES = 40

_MARGIN = 8  # px of background texture beyond what any frame shows
_FINE_SIGMA = 1.5  # px: texture grain (features of 2–3 px)
_COARSE_SIGMA = 8.0  # px: larger structure
_CHROMA_SIGMA = 4.0  # px


@dataclass(frozen=True)
class SyntheticObject:
    """One textured rectangular object and its motion.

    Attributes
    ----------
    motion : str
        ``"translate"``, ``"oscillate"``, ``"rotate"``, ``"grow"``, ``"bounce"``, ``"swing"`` or
        ``"still"``.
    size : int or tuple of int
        Side of a square, or ``(height, width)``, in pixels (at scale 1).
    centre : tuple of float, optional
        ``(x, y)`` of the object's centre in frame 0, in pixels; default the frame's centre.
    velocity : tuple of float
        ``translate``: ``(vx, vy)`` in pixels per frame.
    amplitude : float
        ``oscillate``: amplitude in pixels; the centre is ``centre + amplitude·sin(2π τ / period)``
        along ``axis``, ``τ`` the frames of motion so far. ``bounce``: height of each hop in
        pixels. ``swing``: amplitude in degrees of the rotation about the pivot,
        ``amplitude·sin(2π τ / period)`` clockwise on screen.
    period : float
        ``oscillate``, ``swing``: period in frames. ``bounce``: frames per hop; the object leaves
        the ground at ``τ = 0, period, 2·period …`` and follows a ballistic parabola,
        ``y = centre_y − 4·amplitude·s·(1 − s)`` with ``s = frac(τ / period)``: fastest at
        take-off and landing, still at the top.
    axis : str
        ``oscillate``: ``"x"`` or ``"y"``.
    degrees_per_frame : float
        ``rotate``: rotation about the pivot in degrees per frame, clockwise on screen.
    scale_per_frame : float
        ``grow``: scale factor per frame about the pivot (> 1 approaches, < 1 recedes).
    start, stop : int, optional
        The object moves from frame ``start`` to frame ``stop`` (default: to the end) and is still
        before and after: its own flow is non-zero on frames ``start + 1 … stop``, the frames it
        has just moved into. ``start = 0`` (the default) means it was already moving before the
        clip, so frame 0 has its flow too (the scene model continued backwards to frame −1).
    pivot : tuple of float
        The point of the object that ``rotate``, ``swing`` and ``grow`` keep in place, as fractions
        ``(of the width, of the height)`` from its top-left corner; default the centre.
        ``(0.0, 0.5)`` swings a lying body about its left end, like push-ups.
    """

    motion: str = "translate"
    size: int | tuple[int, int] = 32
    centre: tuple[float, float] | None = None
    velocity: tuple[float, float] = (2.0, 0.0)
    amplitude: float = 8.0
    period: float = 20.0
    axis: str = "x"
    degrees_per_frame: float = 3.0
    scale_per_frame: float = 1.02
    start: int = 0
    stop: int | None = None
    pivot: tuple[float, float] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if self.motion not in MOTIONS:
            raise ValueError(f"motion must be one of {', '.join(MOTIONS)}, got {self.motion!r}")
        if min(self.shape) < 1:
            raise ValueError(f"size must be positive, got {self.size!r}")
        if self.period <= 0:
            raise ValueError(f"period must be positive (frames), got {self.period}")
        if self.axis not in ("x", "y"):
            raise ValueError(f"axis must be 'x' or 'y', got {self.axis!r}")
        if self.scale_per_frame <= 0:
            raise ValueError(f"scale_per_frame must be positive, got {self.scale_per_frame}")
        if self.start < 0 or (self.stop is not None and self.stop < self.start):
            raise ValueError(f"need 0 <= start <= stop, got start={self.start}, stop={self.stop}")
        if len(self.pivot) != 2:
            raise ValueError(f"pivot must be (x, y) fractions of the object, got {self.pivot!r}")
        object.__setattr__(self, "pivot", (float(self.pivot[0]), float(self.pivot[1])))

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels at scale 1."""
        if isinstance(self.size, int):
            return (self.size, self.size)
        return (int(self.size[0]), int(self.size[1]))

    def pose(
        self, t: float, default_centre: tuple[float, float]
    ) -> tuple[float, float, float, float]:
        """``(cx, cy, degrees, scale)`` of the object in frame ``t``, before the camera pan.

        ``(cx, cy)`` is the object's centre. Before frame 0 (``t < 0``) the motion continues
        backwards when ``start`` is 0.
        """
        cx, cy = self.centre if self.centre is not None else default_centre
        begin = -math.inf if self.start == 0 else self.start
        end = math.inf if self.stop is None else self.stop
        tau = min(max(t, begin), end) - self.start
        degrees, scale = 0.0, 1.0
        if self.motion == "translate":
            cx, cy = cx + self.velocity[0] * tau, cy + self.velocity[1] * tau
        elif self.motion == "oscillate":
            offset = self.amplitude * math.sin(2.0 * math.pi * tau / self.period)
            cx, cy = (cx + offset, cy) if self.axis == "x" else (cx, cy + offset)
        elif self.motion == "rotate":
            degrees = self.degrees_per_frame * tau
        elif self.motion == "grow":
            scale = self.scale_per_frame**tau
        elif self.motion == "bounce":
            s = (tau / self.period) % 1.0
            cy -= 4.0 * self.amplitude * s * (1.0 - s)
        elif self.motion == "swing":
            degrees = self.amplitude * math.sin(2.0 * math.pi * tau / self.period)
        if self.pivot != (0.5, 0.5) and (degrees != 0.0 or scale != 1.0):
            # The pivot stays put: centre = pivot − scale·R·(pivot − centre at angle 0, scale 1).
            h, w = self.shape
            px, py = (self.pivot[0] - 0.5) * w, (self.pivot[1] - 0.5) * h
            cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
            cx += px - scale * (cos * px - sin * py)
            cy += py - scale * (sin * px + cos * py)
        return cx, cy, degrees, scale


@dataclass(frozen=True)
class RenderedScene:
    """Rendered frames of a synthetic scene and their ground truth.

    Attributes
    ----------
    frames : ndarray, shape (T, H, W, 3), uint8
        RGB frames.
    flow : ndarray, shape (T, H, W, 2), float32
        Flow ``(dx, dy)`` in pixels per frame from frame ``t − 1`` to frame ``t``, at the pixels of
        frame ``t`` (module docstring: frame 0, ownership).
    boxes : ndarray, shape (T, n_objects, 4), int32
        ``(y0, y1, x0, x1)`` of each object in each frame, half-open, in pixels.
    """

    frames: np.ndarray
    flow: np.ndarray
    boxes: np.ndarray


@dataclass(frozen=True)
class SyntheticClip:
    """An encoded synthetic clip and its ground truth.

    Attributes
    ----------
    path : Path
        The encoded file.
    flow : ndarray, shape (T, H, W, 2), float32
        Flow ``(dx, dy)`` in pixels per frame of each pixel of frame ``t``: where the content at
        ``(y, x)`` in frame ``t`` is, minus where it was in frame ``t − 1``. Frame 0's flow
        continues the scene model backwards (a copy of frame 1's for translation and pan, zero
        for an object whose motion starts later).
    boxes : ndarray, shape (T, n_objects, 4), int32
        ``(y0, y1, x0, x1)`` of each object in each frame, half-open, in pixels.
    fps : float
        Frame rate in frames per second.
    width, height : int
        Frame size in pixels.
    codec : str
        FFmpeg encoder name (``"libx264"``, ``"mpeg4"`` …).
    b_frames : int
        B-frames between consecutive reference frames (fixed pattern).
    pan : tuple of float
        Image motion of the background in pixels per frame.
    objects : tuple of SyntheticObject
    """

    path: Path
    flow: np.ndarray
    boxes: np.ndarray
    fps: float
    width: int
    height: int
    codec: str
    b_frames: int = 0
    pan: tuple[float, float] = (0.0, 0.0)
    objects: tuple[SyntheticObject, ...] = field(default_factory=tuple)

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.flow.shape[0])


def render_scene(
    objects: Sequence[SyntheticObject],
    *,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    n_frames: int = DEFAULT_FRAMES,
    pan: tuple[float, float] = (0.0, 0.0),
    seed: int = 0,
) -> RenderedScene:
    """Render a scene's frames with their dense ground-truth flow and object boxes.

    Parameters
    ----------
    objects : sequence of SyntheticObject
        Drawn in order: later objects in front of earlier ones.
    width, height : int
        Frame size in pixels.
    n_frames : int
        Number of frames T (≥ 1).
    pan : tuple of float
        Image motion ``(dx, dy)`` of the whole scene in pixels per frame caused by the camera
        (a camera turning right gives ``dx < 0``). Objects move with it, on top of their own
        motion.
    seed : int
        Seed of the random textures.

    Returns
    -------
    RenderedScene
    """
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be positive, got {width}×{height}")
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    objects = tuple(objects)
    rng = np.random.default_rng(seed)
    pan_x, pan_y = float(pan[0]), float(pan[1])
    travel_x, travel_y = abs(pan_x) * (n_frames - 1), abs(pan_y) * (n_frames - 1)
    background = _texture(
        rng, height + math.ceil(travel_y) + 2 * _MARGIN, width + math.ceil(travel_x) + 2 * _MARGIN
    )
    origin_x = _MARGIN + max(pan_x, 0.0) * (n_frames - 1)
    origin_y = _MARGIN + max(pan_y, 0.0) * (n_frames - 1)
    textures = [_texture(rng, *obj.shape, tint=rng.uniform(-40.0, 40.0, 3)) for obj in objects]
    masks = [np.ones(obj.shape, dtype=np.float32) for obj in objects]
    default_centre = ((width - 1) / 2.0, (height - 1) / 2.0)

    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    flow = np.empty((n_frames, height, width, 2), dtype=np.float32)
    boxes = np.zeros((n_frames, len(objects), 4), dtype=np.int32)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    size = (width, height)
    for t in range(n_frames):
        camera = np.array([[1.0, 0.0, pan_x * t - origin_x], [0.0, 1.0, pan_y * t - origin_y]])
        image = cv2.warpAffine(background, camera, size, flags=cv2.INTER_LINEAR)
        flow[t, ..., 0], flow[t, ..., 1] = pan_x, pan_y
        for k, obj in enumerate(objects):
            before = _object_affine(obj, t - 1, default_centre, pan_x, pan_y)
            now = _object_affine(obj, t, default_centre, pan_x, pan_y)
            colour = cv2.warpAffine(
                textures[k], now, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            )
            alpha = cv2.warpAffine(
                masks[k], now, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
            )[..., None]
            image = image * (1.0 - alpha) + colour * alpha
            back = _compose(before, _invert(now))  # frame t pixel -> where it was in frame t - 1
            inside = alpha[..., 0] >= 0.5
            flow[t, ..., 0][inside] = (
                (1.0 - back[0, 0]) * xs[inside] - back[0, 1] * ys[inside] - back[0, 2]
            )
            flow[t, ..., 1][inside] = (
                -back[1, 0] * xs[inside] + (1.0 - back[1, 1]) * ys[inside] - back[1, 2]
            )
            boxes[t, k] = _box(now, obj.shape, height, width)
        frames[t] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return RenderedScene(frames=frames, flow=flow, boxes=boxes)


def make_clip(
    path: str | os.PathLike,
    objects: Sequence[SyntheticObject],
    *,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    n_frames: int = DEFAULT_FRAMES,
    fps: float = 25,
    codec: str = "libx264",
    b_frames: int = 0,
    pan: tuple[float, float] = (0.0, 0.0),
    seed: int = 0,
    crf: int = 18,
    bit_rate: int = 3_000_000,
    preset: str = "medium",
    gop_size: int | None = None,
    encoder_options: dict[str, str] | None = None,
) -> SyntheticClip:
    """Render a scene and encode it to ``path``.

    Parameters
    ----------
    path : path-like
        Output file; the suffix chooses the container (``.mp4``, ``.mov``, ``.avi``, ``.mkv``).
    objects : sequence of SyntheticObject
        Drawn in order: later objects in front of earlier ones.
    width, height : int
        Frame size in pixels: any even numbers (yuv420p halves the chroma planes), not
        necessarily multiples of 16.
    n_frames : int
        Number of frames T.
    fps : float
        Frame rate in frames per second.
    codec : str
        FFmpeg encoder. ``"libx264"`` (H.264; ``crf``, ``preset``, one thread) and ``"mpeg4"``
        (MPEG-4 Part 2; ``bit_rate``) get tuned options; any other encoder that accepts yuv420p
        gets ``bit_rate`` and ``encoder_options`` only (useful for codecs without vectors).
    b_frames : int
        B-frames between consecutive reference frames (encoder option ``bf``), in a fixed
        pattern (``b_strategy=0``: x264's adaptive decision would otherwise often choose none);
        0 for I/P only.
    pan : tuple of float
        Image motion of the scene in pixels per frame caused by the camera.
    seed : int
        Seed of the random textures; the same arguments give the same file.
    crf : int
        libx264 constant rate factor (18: visually lossless).
    bit_rate : int
        Bits per second for encoders other than libx264 (3 Mbps: near-lossless at these sizes).
    preset : str
        libx264 preset.
    gop_size : int, optional
        Frames between key frames; default the encoder's (x264: 250, FFmpeg's others: 12).
    encoder_options : dict, optional
        Extra FFmpeg encoder options; they override the ones above.

    Returns
    -------
    SyntheticClip

    Raises
    ------
    ValueError
        Odd width or height, unknown suffix, negative ``b_frames`` or non-positive ``fps``.
    """
    path = Path(path)
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(
            f"width and height must be positive and even (yuv420p), got {width}×{height}"
        )
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"{path}: unknown container suffix; use one of {', '.join(sorted(CONTAINERS))}"
        )
    if b_frames < 0:
        raise ValueError(f"b_frames must be >= 0, got {b_frames}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    objects = tuple(objects)
    scene = render_scene(objects, width=width, height=height, n_frames=n_frames, pan=pan, seed=seed)
    rate = Fraction(fps).limit_denominator(1001)
    options = _encoder_options(codec, b_frames, crf, preset)
    options.update(encoder_options or {})
    with av.open(str(path), "w", format=fmt, options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec != "libx264":
            stream.bit_rate = bit_rate
        if gop_size is not None:
            stream.codec_context.gop_size = gop_size
        stream.options = options
        stream.codec_context.thread_count = 1  # PyAV's own default would override "threads"
        stream.codec_context.thread_type = "SLICE"
        for t, rgb in enumerate(scene.frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = t
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return SyntheticClip(
        path=path,
        flow=scene.flow,
        boxes=scene.boxes,
        fps=float(rate),
        width=width,
        height=height,
        codec=codec,
        b_frames=b_frames,
        pan=(float(pan[0]), float(pan[1])),
        objects=objects,
    )


def moving_square_clip(
    path: str | os.PathLike,
    codec: str = "libx264",
    vx: float = 2.0,
    vy: float = 0.0,
    size: int = 48,
    **kw,
) -> SyntheticClip:
    """A textured square translating at ``(vx, vy)`` px per frame over a still textured background.

    The square's path is centred in the frame (it passes the frame's centre half-way through the
    clip), and starts on whole pixels. ``kw`` goes to `make_clip` (``width``, ``height``,
    ``n_frames``, ``b_frames``, ``pan``, ``seed`` …).
    """
    width = kw.get("width", DEFAULT_WIDTH)
    height = kw.get("height", DEFAULT_HEIGHT)
    n_frames = kw.get("n_frames", DEFAULT_FRAMES)
    left = round((width - size) / 2.0 - vx * (n_frames - 1) / 2.0)
    top = round((height - size) / 2.0 - vy * (n_frames - 1) / 2.0)
    square = SyntheticObject(
        motion="translate",
        size=size,
        centre=(left + (size - 1) / 2.0, top + (size - 1) / 2.0),
        velocity=(vx, vy),
    )
    return make_clip(path, [square], codec=codec, **kw)


def ground_truth_on_grid(clip: SyntheticClip | RenderedScene, cell: int = 8) -> np.ndarray:
    """Mean ground-truth flow in each grid cell, to compare with a `MotionField`.

    Parameters
    ----------
    clip : SyntheticClip or RenderedScene
    cell : int
        Cell size in pixels; the grid is `actionlrp.video.grid_size` and partial edge cells
        average the pixels they contain.

    Returns
    -------
    ndarray, shape (T, gh, gw, 2), float32
        Flow ``(dx, dy)`` in pixels per frame from frame ``t − 1`` to frame ``t``, at the cells of
        frame ``t``.
    """
    return average_on_grid(clip.flow, cell)


def _encoder_options(codec: str, b_frames: int, crf: int, preset: str) -> dict[str, str]:
    options = {"bf": str(b_frames), "b_strategy": "0"}
    if codec == "libx264":
        options.update({"crf": str(crf), "preset": preset, "threads": "1"})
    return options


def _texture(
    rng: np.random.Generator, height: int, width: int, tint: np.ndarray | None = None
) -> np.ndarray:
    """High-contrast smooth random RGB texture, shape (height, width, 3), float32 in [16, 240]."""
    fine = _blurred_noise(rng, (height, width), _FINE_SIGMA)
    coarse = _blurred_noise(rng, (height, width), _COARSE_SIGMA)
    chroma = _blurred_noise(rng, (height, width, 3), _CHROMA_SIGMA)
    rgb = (fine + 0.7 * coarse)[..., None] + 0.4 * chroma
    lo, hi = np.percentile(rgb, (1.0, 99.0))
    rgb = 16.0 + 224.0 * (rgb - lo) / max(hi - lo, 1e-6)
    if tint is not None:
        rgb = rgb + tint.astype(np.float32)
    return np.clip(rgb, 16.0, 240.0).astype(np.float32)


def _blurred_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    noise = rng.standard_normal(shape).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return smooth / max(float(smooth.std()), 1e-6)


def _object_affine(
    obj: SyntheticObject,
    t: float,
    default_centre: tuple[float, float],
    pan_x: float,
    pan_y: float,
) -> np.ndarray:
    """2×3 map from texture pixel ``(u, v)`` to image ``(x, y)`` in frame ``t``."""
    cx, cy, degrees, scale = obj.pose(t, default_centre)
    cx, cy = cx + pan_x * t, cy + pan_y * t
    h, w = obj.shape
    theta = math.radians(degrees)
    linear = scale * np.array(
        [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]
    )
    middle = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    offset = np.array([cx, cy]) - linear @ middle
    return np.hstack([linear, offset[:, None]])


def _invert(affine: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(affine)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2×3 affine of ``outer ∘ inner``."""
    linear = outer[:, :2] @ inner[:, :2]
    offset = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return np.hstack([linear, offset[:, None]])


def _box(affine: np.ndarray, shape: tuple[int, int], height: int, width: int) -> np.ndarray:
    """Half-open ``(y0, y1, x0, x1)``: pixels whose centres lie in the half-open bounding box."""
    h, w = shape
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])
    image = corners @ affine[:, :2].T + affine[:, 2]
    lo = np.ceil(image.min(axis=0) - 1e-6).astype(int)
    hi = np.ceil(image.max(axis=0) - 1e-6).astype(int)
    x0, y0 = min(max(lo[0], 0), width), min(max(lo[1], 0), height)
    x1, y1 = min(max(hi[0], x0), width), min(max(hi[1], y0), height)
    return np.array([y0, y1, x0, x1], dtype=np.int32)
