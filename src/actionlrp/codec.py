"""Motion vectors read straight out of the bitstream (DESIGN §1).

The decoder is FFmpeg through PyAV with ``flags2=+export_mvs``. Each decoded frame carries the
motion vectors of its inter-coded blocks as side data; they are rasterised onto a regular grid of
``cell`` × ``cell`` pixels, weighted by each block's area overlap with the cell, and turned into
flow in pixels per frame: for each cell of frame ``t``, the motion from frame ``t − 1`` to frame
``t`` of the content seen there in frame ``t``.

What happens with frames and blocks that carry no vector:

* **Frames without vectors** (I-frames, and frames whose side data is missing) are filled from
  their neighbours: each grid cell takes the mean of the nearest earlier and the nearest later
  value of that cell that came from a vector (only one of them at the start or the end of the clip;
  zero where the clip has none).
* **B-frames of MPEG-4 Part 2** are treated as frames without vectors: FFmpeg exports their
  direct-mode macroblocks (the most common kind) as zero vectors, which would read as "no motion".
* **Intra-coded blocks inside P/B frames** carry no vector. A cell that no inter block covers is
  filled the same way, from the same cell in the nearest frames where it was covered. A cell that
  is only partly covered takes the area-weighted mean of the blocks that do cover it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from actionlrp.errors import NoMotionVectorsError, VideoError

#: FFmpeg decoders that export motion vectors with ``flags2=+export_mvs``.
CODECS_WITH_VECTORS = frozenset(
    {
        "h264",
        "mpeg4",
        "msmpeg4",
        "msmpeg4v1",
        "msmpeg4v2",
        "msmpeg4v3",
        "wmv1",
        "wmv2",
        "h263",
        "h263p",
        "h263i",
        "flv",
        "flv1",
        "mpeg1video",
        "mpeg2video",
    }
)
#: Codecs whose B-frame vectors FFmpeg exports without their direct-mode part (MPEG-4 Part 2
#: exports direct-mode macroblocks as zero vectors): their B-frames are filled from neighbours.
_CODECS_WITH_UNRELIABLE_B_VECTORS = frozenset({"mpeg4"})
#: Codecs whose B-frames are never used as references (MPEG-1/2, MPEG-4 Part 2, H.263 family).
_CODECS_WITHOUT_B_REFERENCES = CODECS_WITH_VECTORS - {"h264"}

#: Decoder options that skip pixel work the vectors do not need. Each was measured
#: (``benchmarks/bench_motion.py``) and tested to leave the vectors unchanged
#: (``tests/test_codec.py::test_fast_decoder_options_leave_vectors_unchanged``).
FAST_DECODER_OPTIONS: dict[str, str] = {"skip_loop_filter": "all"}

_WINDOW = 64  # frames: the farthest a reference frame is looked for
_PICTURE_TYPES = {1: "I", 2: "P", 3: "B", 4: "S", 5: "I", 6: "P", 7: "B"}


@dataclass(frozen=True)
class MotionField:
    """Forward motion of a clip on a regular pixel grid: the input layer of the model.

    Attributes
    ----------
    flow : ndarray, shape (T, gh, gw, 2), float32
        Flow ``(dx, dy)`` in pixels per frame of each grid cell of frame ``t``: the motion from
        frame ``t − 1`` to frame ``t`` of the content seen there in frame ``t`` (a P-frame block at
        ``dst`` predicted from ``src`` in frame ``t − d`` gives ``(dst − src) / d``). Frame 0 has
        no previous frame and takes the motion of its neighbours. ``gh = ceil(height / cell)``,
        ``gw = ceil(width / cell)``.
    frame_types : ndarray, shape (T,), str
        Picture type of each frame in display order: ``"I"``, ``"P"``, ``"B"``, ``"S"``
        (MPEG-4 GMC) or ``"?"``.
    has_vectors : ndarray, shape (T,), bool
        True where the frame carried motion vectors of its own (False for filled frames).
    timestamps : ndarray, shape (T,), float64
        Presentation time of each frame in seconds.
    width, height : int
        Video size in pixels.
    fps : float
        Nominal frame rate in frames per second.
    cell : int
        Grid cell size in pixels.
    codec, container : str
        FFmpeg names of the video codec and the container format.
    method : str
        ``"mv"`` (motion vectors) or ``"flow"`` (pixel-domain Farnebäck reference).
    """

    flow: np.ndarray
    frame_types: np.ndarray
    has_vectors: np.ndarray
    timestamps: np.ndarray
    width: int
    height: int
    fps: float
    cell: int
    codec: str = ""
    container: str = ""
    method: str = "mv"

    @property
    def n_frames(self) -> int:
        """Number of frames T."""
        return int(self.flow.shape[0])

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """``(T, gh, gw)``: the shape of the voxel grid that relevance maps live on."""
        return (int(self.flow.shape[0]), int(self.flow.shape[1]), int(self.flow.shape[2]))

    def mean_flow(self) -> tuple[float, float]:
        """Mean ``(dx, dy)`` in pixels per frame over all grid cells and frames."""
        if self.flow.size == 0:
            return (0.0, 0.0)
        m = self.flow.reshape(-1, 2).mean(axis=0, dtype=np.float64)
        return (float(m[0]), float(m[1]))

    def summary(self) -> dict:
        """The numbers ``actionlrp motion`` prints."""
        dx, dy = self.mean_flow()
        return {
            "codec": self.codec,
            "container": self.container,
            "width": self.width,
            "height": self.height,
            "fps": round(self.fps, 3),
            "frames": self.n_frames,
            "frames_with_vectors": int(self.has_vectors.sum()),
            "mean_flow": [round(dx, 4), round(dy, 4)],
        }


def grid_size(height: int, width: int, cell: int) -> tuple[int, int]:
    """``(gh, gw)``: rows and columns of ``cell``-px cells that cover a ``height × width`` frame."""
    return (-(-height // cell), -(-width // cell))


# --------------------------------------------------------------------------------------------
# Opening a video, with the project's errors


@contextlib.contextmanager
def open_video(
    path: str | os.PathLike,
) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """Open ``path`` and yield ``(container, video_stream)``; every failure is a `VideoError`."""
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: no such file")
    if p.is_dir():
        raise VideoError(f"{p}: is a directory, not a video file")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: empty file")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(f"{p}: not a readable video ({_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise VideoError(f"{p}: no video stream")
        yield container, container.streams.video[0]
    finally:
        container.close()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def _check_codec(path: Path, codec: str) -> None:
    if codec not in CODECS_WITH_VECTORS:
        raise NoMotionVectorsError(
            f"{path}: {codec.upper()} exports no motion vectors; re-run with --transcode "
            "(re-encodes to MPEG-4 Part 2 in a temporary file)"
        )


def _frame_rate(stream: av.VideoStream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            value = float(rate)
            if 0.0 < value < 1000.0:
                return value
    return 25.0


# --------------------------------------------------------------------------------------------
# Forward step: bitstream → MotionField


def read_motion_field(
    path: str | os.PathLike,
    cell: int = 8,
    *,
    transcode: bool = False,
    decoder_options: dict[str, str] | None = None,
    threads: int = 0,
) -> MotionField:
    """Read the motion vectors of a clip into a `MotionField`, streaming.

    Parameters
    ----------
    path : path-like
        A video file (MP4, AVI, MKV, ...).
    cell : int, default 8
        Grid cell size in pixels.
    transcode : bool, default False
        Re-encode a clip whose codec exports no vectors (HEVC, VP9, AV1, MJPEG ...) to MPEG-4
        Part 2 in a temporary file first, and read the vectors of that.
    decoder_options : dict, optional
        FFmpeg decoder options; default `FAST_DECODER_OPTIONS`.
    threads : int, default 0
        Decoder threads (0: FFmpeg's choice). Slice threads only: frame threads would reorder
        nothing but add latency and memory.

    Returns
    -------
    MotionField
        ``flow`` of shape (T, ceil(H / cell), ceil(W / cell), 2) in px per frame.

    Raises
    ------
    VideoError
        Missing file, not a video, no video stream, or no frame decodes.
    NoMotionVectorsError
        The codec exports no vectors and ``transcode`` is False.
    """
    if cell < 1:
        raise ValueError(f"cell must be a positive number of pixels, got {cell}")
    path = Path(path)
    with open_video(path) as (container, stream):
        codec = stream.codec_context.name
        if codec in CODECS_WITH_VECTORS:
            return _decode_vectors(path, container, stream, cell, decoder_options, threads)
        if not transcode:
            _check_codec(path, codec)
    with _transcoded(path) as tmp:
        field = read_motion_field(tmp, cell, decoder_options=decoder_options, threads=threads)
    return _replace_origin(field, codec)


def _replace_origin(field: MotionField, codec: str) -> MotionField:
    from dataclasses import replace

    return replace(field, codec=f"{codec}->mpeg4")


def _decode_vectors(
    path: Path,
    container: av.container.InputContainer,
    stream: av.VideoStream,
    cell: int,
    decoder_options: dict[str, str] | None,
    threads: int,
) -> MotionField:
    ctx = stream.codec_context
    options = dict(FAST_DECODER_OPTIONS if decoder_options is None else decoder_options)
    options["flags2"] = "+export_mvs"
    ctx.options = options
    if threads:
        ctx.thread_count = threads
    ctx.thread_type = "SLICE"
    codec = ctx.name
    width, height = ctx.width, ctx.height
    if not width or not height:
        raise VideoError(f"{path}: video stream has no frame size")
    builder = _FieldBuilder(
        height,
        width,
        cell,
        b_references=codec not in _CODECS_WITHOUT_B_REFERENCES,
        skip_b=codec in _CODECS_WITH_UNRELIABLE_B_VECTORS,
    )
    last_error = ""
    for item in _decoded(container, stream):
        if isinstance(item, int):
            builder.packet(item)
        elif isinstance(item, str):
            last_error = item
        else:
            builder.add(*item)
    if not builder.n_frames:
        reason = f" ({last_error})" if last_error else ""
        raise VideoError(f"{path}: no frame decodes{reason}")
    fps = _frame_rate(stream)
    flow, frame_types, has_vectors, times = builder.finish()
    if len(times) > 1 and not (np.diff(times) > 0).all():
        times = np.arange(len(times), dtype=np.float64) / fps  # e.g. AVI with B-frames
    return MotionField(
        flow=flow,
        frame_types=frame_types,
        has_vectors=has_vectors,
        timestamps=times,
        width=int(width),
        height=int(height),
        fps=fps,
        cell=cell,
        codec=codec,
        container=container.format.name,
        method="mv",
    )


_END = object()


def _decoded(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator:
    """Demux and decode in a background thread (FFmpeg releases the GIL while it decodes).

    Yields, in order: a packet's pts (int, decode order), a decoded frame as
    ``(picture type, pts, seconds, vectors or None)`` (display order), or an error message (str)
    for a damaged stretch that was skipped.
    """
    items: queue.Queue = queue.Queue(maxsize=256)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                items.put(item, timeout=0.1)
                return

    def frame_item(frame: av.VideoFrame) -> tuple:
        side = frame.side_data.get("MOTION_VECTORS")
        return (
            _PICTURE_TYPES.get(int(frame.pict_type), "?"),
            frame.pts,
            float(frame.time) if frame.time is not None else np.nan,
            side.to_ndarray() if side is not None else None,
        )

    def produce() -> None:
        try:
            failures = 0
            packets = container.demux(stream)
            while not stop.is_set():
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:
                    # A damaged container: resume after the damage, a bounded number of times.
                    put(_reason(exc))
                    failures += 1
                    if failures > 100:
                        break
                    packets = container.demux(stream)
                    continue
                if packet.size and packet.pts is not None:
                    put(int(packet.pts))
                try:
                    for frame in packet.decode():
                        put(frame_item(frame))
                except av.error.FFmpegError as exc:
                    put(_reason(exc))
            with contextlib.suppress(av.error.FFmpegError):
                for frame in stream.codec_context.decode(None):
                    put(frame_item(frame))
        except BaseException as exc:  # noqa: BLE001 — handed to the consumer and re-raised there
            put(exc)
        finally:
            put(_END)

    worker = threading.Thread(target=produce, name="actionlrp-decode", daemon=True)
    worker.start()
    try:
        while (item := items.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


class _FieldBuilder:
    """Streams decoded frames into flow: vectors → per-cell sums → flow, a batch at a time.

    A frame becomes flow once the frames that decide its reference distances have been decoded
    (``lag`` frames later), so only a few frames' sums are ever held: memory is the field plus
    a constant.
    """

    def __init__(
        self,
        height: int,
        width: int,
        cell: int,
        *,
        b_references: bool,
        skip_b: bool,
        batch: int = 32,
        lag: int = 16,
    ) -> None:
        self.raster = _Rasteriser(height, width, cell)
        self.b_references, self.skip_b = b_references, skip_b
        self.batch, self.lag = batch, lag
        self.packet_rank: dict[int, int] = {}
        self.types: list[str] = []
        self.rank: list[int] = []
        self.display_of_rank: dict[int, int] = {}
        self.times: list[float] = []
        self.has_vectors: list[bool] = []
        self.ranks_usable = True
        self.last_pts = -np.inf
        self.pending = np.zeros((0, 2, 3, self.raster.gh, self.raster.gw), np.float32)
        self.settled = 0  # frames before this index are in ``chunks``
        self.chunks: list[np.ndarray] = []

    @property
    def n_frames(self) -> int:
        return len(self.types)

    def packet(self, pts: int) -> None:
        """Record a packet's timestamp, in decode order."""
        self.packet_rank.setdefault(pts, len(self.packet_rank))

    def add(self, kind: str, pts: int | None, seconds: float, vectors: np.ndarray | None) -> None:
        """Take the next decoded frame (the decoder gives them in display order)."""
        if kind == "B" and self.skip_b:
            vectors = None
        j = len(self.types)
        rank = self.packet_rank.get(pts, -1) if pts is not None else -1
        if rank < 0 or pts <= self.last_pts:
            self.ranks_usable = False  # e.g. AVI: no presentation order to match packets by
        else:
            self.last_pts = pts
            self.display_of_rank[rank] = j
        self.rank.append(rank)
        self.types.append(kind)
        self.times.append(seconds)
        self.has_vectors.append(vectors is not None and len(vectors) > 0)
        self.raster.add(vectors)
        if self.raster.n_queued >= self.batch:
            self._advance(final=False)

    def _advance(self, final: bool) -> None:
        sums = self.raster.take()
        if len(sums):
            self.pending = np.concatenate([self.pending, sums])
        upto = self.n_frames if final else self.n_frames - self.lag
        if upto <= self.settled:
            return
        lo = self.settled
        past, future = self._distances(lo, self.n_frames)
        flow = _combine(self.pending, past, future)  # frames lo … n − 1
        if self.skip_b:
            _fill_b_from_next_anchor(flow, self.types[lo:], self.has_vectors[lo:])
        self.chunks.append(flow[: upto - lo])
        self.pending = self.pending[upto - lo :].copy()
        self.settled = upto

    def _is_reference(self, i: int) -> bool:
        kind = self.types[i]
        if kind in ("I", "P", "S"):
            return True
        if kind != "B" or not (self.b_references and self.ranks_usable):
            return False
        # The middle of a B-pyramid: the next frame decoded is shown before it.
        nxt = self.display_of_rank.get(self.rank[i] + 1)
        return nxt is not None and nxt < i

    def _distances(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames from each of frames lo … hi − 1 to its past and its future reference.

        FFmpeg marks a vector's reference only as past (``source < 0``) or future
        (``source > 0``), so the distance comes from the picture structure: a frame's references
        are the nearest earlier / later reference pictures in display order that were decoded
        before it (I, P, S, and in H.264 the referenced B-frames of a pyramid).
        """
        past, future = np.ones(hi - lo), np.ones(hi - lo)
        use_rank = self.ranks_usable
        n = self.n_frames
        for j in range(lo, hi):
            rj = self.rank[j]
            for i in range(j - 1, max(-1, j - _WINDOW), -1):
                if self._is_reference(i) and (not use_rank or self.rank[i] < rj):
                    past[j - lo] = j - i
                    break
            if self.types[j] == "B":
                for i in range(j + 1, min(n, j + _WINDOW)):
                    if self._is_reference(i) and (not use_rank or self.rank[i] < rj):
                        future[j - lo] = i - j
                        break
        return past, future

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``flow`` (T, gh, gw, 2) filled, ``frame_types``, ``has_vectors``, ``timestamps``."""
        self._advance(final=True)
        flow = np.concatenate(self.chunks) if len(self.chunks) > 1 else self.chunks[0]
        self.chunks = []
        fill_missing(flow, out=flow)
        return (
            flow,
            np.asarray(self.types),
            np.asarray(self.has_vectors, dtype=bool),
            np.asarray(self.times, dtype=np.float64),
        )


def _fill_b_from_next_anchor(flow: np.ndarray, types: list[str], has_vectors: list[bool]) -> None:
    """Give each B-frame without vectors the flow of the next P-frame, whose vectors span it."""
    nxt = None
    for j in range(len(types) - 1, -1, -1):
        if types[j] != "B" and has_vectors[j]:
            nxt = j
        elif types[j] == "B" and nxt is not None:
            flow[j] = flow[nxt]


class _Rasteriser:
    """Area-weighted splatting of codec blocks onto the ``cell``-px grid.

    Vectors are buffered and splatted for many frames at once, so the numpy work is per batch,
    not per frame.
    """

    def __init__(self, height: int, width: int, cell: int) -> None:
        self.height, self.width, self.cell = height, width, cell
        self.gh, self.gw = grid_size(height, width, cell)
        self._pending: list[np.ndarray] = []
        self._pending_frames: list[int] = []
        self._n_frames = 0

    @property
    def n_queued(self) -> int:
        return self._n_frames

    def add(self, vectors: np.ndarray | None) -> None:
        """Queue one frame's vectors (None or empty: a frame without vectors)."""
        if vectors is not None and len(vectors):
            self._pending.append(vectors)
            self._pending_frames.append(self._n_frames)
        self._n_frames += 1

    def take(self) -> np.ndarray:
        """Sums of the queued frames, (n, 2, 3, gh, gw): past / future × (Σa·dx, Σa·dy, Σa)."""
        out = np.empty((self._n_frames, 2, 3, self.gh, self.gw), dtype=np.float32)
        if self._pending:
            vectors = np.concatenate(self._pending)
            frame = np.repeat(self._pending_frames, [len(v) for v in self._pending])
            self._splat(vectors, frame, out)
        else:
            out.fill(0.0)
        self._pending, self._pending_frames, self._n_frames = [], [], 0
        return out

    def _splat(self, vectors: np.ndarray, frame: np.ndarray, out: np.ndarray) -> None:
        """Add Σ area·dx, Σ area·dy, Σ area per frame, direction and cell into ``out``.

        ``dx, dy = dst − src`` in pixels (FFmpeg: ``src = dst + motion / scale``). Each block is
        cut into its pieces on the cell grid; a piece weighs its area inside the frame.
        """
        c = self.cell
        scale = np.maximum(vectors["motion_scale"], 1).astype(np.float32)
        dx = -vectors["motion_x"].astype(np.float32) / scale
        dy = -vectors["motion_y"].astype(np.float32) / scale
        w = vectors["w"].astype(np.int32)
        h = vectors["h"].astype(np.int32)
        x0 = vectors["dst_x"] - w // 2
        y0 = vectors["dst_y"] - h // 2
        x1 = np.minimum(x0 + w, self.width)
        y1 = np.minimum(y0 + h, self.height)
        x0, y0 = np.maximum(x0, 0), np.maximum(y0, 0)
        cx0, cy0 = x0 // c, y0 // c
        span = int(max(((x1 - 1) // c - cx0).max(), ((y1 - 1) // c - cy0).max(), 0)) + 1
        offsets = np.arange(span, dtype=np.int32)
        col, row = cx0[:, None] + offsets, cy0[:, None] + offsets  # (n, span) cells touched
        ox = np.minimum(x1[:, None], (col + 1) * c) - np.maximum(x0[:, None], col * c)
        oy = np.minimum(y1[:, None], (row + 1) * c) - np.maximum(y0[:, None], row * c)
        area = (np.maximum(oy, 0)[:, :, None] * np.maximum(ox, 0)[:, None, :]).astype(np.float32)
        n_cells = self.gh * self.gw
        size = out.shape[0] * 2 * n_cells
        direction = (vectors["source"] > 0).astype(np.int64)
        base = (frame * 2 + direction) * n_cells + cy0 * self.gw + cx0
        # Pieces off the grid have zero area; clamping keeps their index in range.
        index = np.minimum(base[:, None, None] + offsets[:, None] * self.gw + offsets, size - 1)
        index, area = index.ravel(), area.reshape(len(vectors), -1)
        planes = (out.shape[0], 2, self.gh, self.gw)
        out[:, :, 0] = np.bincount(index, (area * dx[:, None]).ravel(), size).reshape(planes)
        out[:, :, 1] = np.bincount(index, (area * dy[:, None]).ravel(), size).reshape(planes)
        out[:, :, 2] = np.bincount(index, area.ravel(), size).reshape(planes)


def _combine(acc: np.ndarray, past: np.ndarray, future: np.ndarray) -> np.ndarray:
    """Flow (T, gh, gw, 2) from the per-direction sums (T, 2, 3, gh, gw); NaN where no inter
    block covers a cell.

    Past reference at distance d: flow = (dst − src) / d. Future reference at distance d:
    flow = (src − dst) / d (DESIGN §1).
    """
    inv_past = (1.0 / past).astype(np.float32)[:, None, None, None]
    inv_future = (1.0 / future).astype(np.float32)[:, None, None, None]
    weight = acc[:, 0, 2] + acc[:, 1, 2]
    flow = acc[:, 0, :2] * inv_past
    flow -= acc[:, 1, :2] * inv_future
    with np.errstate(invalid="ignore"):
        flow /= weight[:, None]  # 0 / 0 = NaN where nothing covers the cell
    return np.ascontiguousarray(flow.transpose(0, 2, 3, 1))


def fill_missing(flow: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Fill NaN cells with the mean of the nearest earlier and later valid value of that cell.

    Parameters
    ----------
    flow : ndarray, shape (T, gh, gw, 2)
        With NaN where a cell carried no vector.

    out : ndarray, optional
        Where to write the result (may be ``flow`` itself).

    Returns
    -------
    ndarray, same shape, float32, without NaN (0 where a cell never carried a vector).
    """
    t = flow.shape[0]
    flat = flow.reshape(t, -1, 2)
    valid = ~np.isnan(flat[..., 0])
    if out is None:
        out = flow.copy()
    elif out is not flow:
        out[...] = flow
    if valid.all():
        return out
    steps = np.arange(t, dtype=np.int32)[:, None]
    prev_idx = np.maximum.accumulate(np.where(valid, steps, -1), axis=0)
    next_idx = np.minimum.accumulate(np.where(valid, steps, t)[::-1], axis=0)[::-1]
    ti, ci = np.nonzero(~valid)
    p, n = prev_idx[ti, ci], next_idx[ti, ci]
    has_p, has_n = p >= 0, n < t
    total = np.where(has_p[:, None], flat[np.maximum(p, 0), ci], 0.0)
    total += np.where(has_n[:, None], flat[np.minimum(n, t - 1), ci], 0.0)
    count = np.maximum(has_p.astype(np.float32) + has_n, 1.0)
    out.reshape(t, -1, 2)[ti, ci] = total / count[:, None]
    return out


# --------------------------------------------------------------------------------------------
# Re-encoding a clip whose codec exports no vectors


@contextlib.contextmanager
def _transcoded(path: Path) -> Iterator[Path]:
    """Re-encode ``path`` to MPEG-4 Part 2 in a temporary AVI; yield its path, then delete it."""
    fd, name = tempfile.mkstemp(suffix=".avi", prefix="actionlrp-")
    os.close(fd)
    tmp = Path(name)
    try:
        transcode_to_mpeg4(path, tmp)
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def transcode_to_mpeg4(
    src: str | os.PathLike, dst: str | os.PathLike, bit_rate: int = 4_000_000
) -> Path:
    """Decode ``src`` and re-encode its video to MPEG-4 Part 2 in ``dst`` (no B-frames)."""
    src, dst = Path(src), Path(dst)
    with open_video(src) as (container, stream):
        rate = stream.average_rate or stream.guessed_rate or 25
        with av.open(str(dst), "w") as out:
            enc = out.add_stream("mpeg4", rate=rate)
            enc.width = stream.codec_context.width + stream.codec_context.width % 2
            enc.height = stream.codec_context.height + stream.codec_context.height % 2
            enc.pix_fmt = "yuv420p"
            enc.bit_rate = bit_rate
            n = 0
            try:
                for frame in container.decode(stream):
                    picture = frame.reformat(enc.width, enc.height, "yuv420p")
                    picture.pts = None
                    picture.pict_type = 0  # let the encoder choose I / P (the source says "I")
                    out.mux(enc.encode(picture))
                    n += 1
            except av.error.FFmpegError as exc:
                if not n:
                    raise VideoError(f"{src}: no frame decodes ({_reason(exc)})") from None
            out.mux(enc.encode(None))
    if not n:
        raise VideoError(f"{src}: no frame decodes")
    return dst


def motion_field(
    path: str | os.PathLike, method: str = "mv", cell: int = 8, *, transcode: bool = False
) -> MotionField:
    """The motion field of a clip from its motion vectors (``"mv"``) or from Farnebäck flow.

    ``"flow"`` is the pixel-domain reference of `actionlrp.flow`; it decodes every pixel.
    """
    if method == "mv":
        return read_motion_field(path, cell, transcode=transcode)
    if method == "flow":
        from actionlrp.flow import farneback_motion_field

        return farneback_motion_field(path, cell)
    raise ValueError(f"motion method must be 'mv' or 'flow', got {method!r}")
