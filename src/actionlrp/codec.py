"""Motion vectors read straight out of the bitstream (design §1).

The decoder is FFmpeg through PyAV with ``flags2=+export_mvs``. Each decoded frame carries the
motion vectors of its inter-coded blocks as side data; they are turned into flow in pixels per
frame: for each cell of frame ``t``, the motion from frame ``t − 1`` to frame ``t`` of the
content seen there in frame ``t``. The frames are decoded in a thread of their own and turned
into flow as they come by `actionlrp._field_builder`; how a block contributes to the cells of
the grid, and how cells and frames without vectors are filled from their neighbours, is in
`actionlrp.raster`.

What decoding decides:

* **Reference distances.** FFmpeg marks a vector's reference only as past or future, so how far
  away it lies is read off the picture structure: the nearest earlier (later) reference picture
  in display order that was decoded before the frame — I, P, S, and in H.264 the referenced
  B-frames of a B-pyramid. H.264 streams with several reference pictures have each block's
  reference found in the decoded pixels instead (`actionlrp.references`).
* **Frames without vectors** are I-frames and frames whose side data is missing.
* **B-frames of MPEG-4 Part 2** are treated as frames without vectors: FFmpeg exports their
  direct-mode macroblocks (the most common kind) as zero vectors, which would read as "no
  motion". They take the flow of the next P-frame, whose vectors span them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
from av.sidedata.motionvectors import MotionVectors
from av.sidedata.sidedata import SideDataContainer

from actionlrp._field_builder import _FieldBuilder
from actionlrp._scratch import _workspace
from actionlrp.errors import NoMotionVectorsError, VideoError
from actionlrp.h264 import nal_length_size, packet_reference
from actionlrp.hog import frame_luma
from actionlrp.references import _ReferenceMatcher, reference_candidates
from actionlrp.video import (
    _PICTURE_TYPES,
    MotionField,
    _frame_rate,
    _reason,
    open_video,
)

if TYPE_CHECKING:
    from actionlrp.descriptors import StreamingDescriber

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
#: The MPEG-1/2/4 and H.263 family is first decoded with less pixel work still: no inverse
#: DCT, pictures at 1/8 size. The vectors come from the bitstream all the same, in full-size
#: pixels, and the pass is 15–30 % faster. Only the error concealment of a damaged stream
#: looks at the pixels, so any decoding error stops that pass (``explode``) and the clip is
#: decoded again with `FAST_DECODER_OPTIONS`.
_QUICK_DECODER_OPTIONS = {
    **FAST_DECODER_OPTIONS,
    "skip_idct": "all",
    "lowres": "3",
    "err_detect": "explode",
}
_CODECS_DECODED_QUICKLY = _CODECS_WITHOUT_B_REFERENCES


def _check_codec(path: Path, codec: str) -> None:
    if codec not in CODECS_WITH_VECTORS:
        raise NoMotionVectorsError(
            f"{path}: {codec.upper()} exports no motion vectors; re-run with --transcode "
            "(re-encodes to MPEG-4 Part 2 in a temporary file)"
        )


# --------------------------------------------------------------------------------------------
# Forward step: bitstream → MotionField


def read_motion_field(
    path: str | os.PathLike,
    cell: int = 8,
    *,
    transcode: bool = False,
    decoder_options: dict[str, str] | None = None,
    threads: int = 0,
    hog: bool = False,
    describer: StreamingDescriber | None = None,
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
        FFmpeg decoder options; default `FAST_DECODER_OPTIONS`. By default the MPEG-1/2/4 and
        H.263 family is first decoded with less pixel work still (no inverse DCT, pictures at
        1/8 size: the same vectors), and again with `FAST_DECODER_OPTIONS` only if that pass
        meets a damaged frame, whose error concealment would depend on the pixels.
    threads : int, default 0
        Decoder threads (0: FFmpeg's choice). Slice threads only: frame threads would reorder
        nothing but add latency and memory.
    hog : bool, default False
        Also give each frame's luma gradient histograms per grid cell (`MotionField.hog`,
        `actionlrp.hog`), from a copy of each frame's luma, as the frames come. The MPEG-1/2/4
        and H.263 family then needs the pixels: it is decoded in full, not at 1/8 size.
    describer : StreamingDescriber, optional
        Fed the flow as it settles, so that it describes the clip's cubes while the decoding
        goes on (``describer.finish(field)`` then gives the descriptors).

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

    Examples
    --------
    >>> from actionlrp.video import grid_size
    >>> field = read_motion_field(clip)
    >>> field.codec, field.flow.shape[-1], field.cell
    ('h264', 2, 8)
    >>> field.flow.shape[1:3] == grid_size(field.height, field.width, 8)
    True
    """
    if cell < 1:
        raise ValueError(f"cell must be a positive number of pixels, got {cell}")
    path = Path(path)
    with open_video(path) as (container, stream):
        codec = stream.codec_context.name
        if codec in CODECS_WITH_VECTORS:
            if decoder_options is not None or hog or codec not in _CODECS_DECODED_QUICKLY:
                return _decode_vectors(
                    path, container, stream, cell, decoder_options, threads, hog, describer
                )
            field = _decode_vectors(
                path,
                container,
                stream,
                cell,
                _QUICK_DECODER_OPTIONS,
                threads,
                describer=describer,
                quick=True,
            )
            if field is not None:
                return field
        elif not transcode:
            _check_codec(path, codec)
    if codec in CODECS_WITH_VECTORS:  # a damaged stream: again, with its errors concealed
        with open_video(path) as (container, stream):
            return _decode_vectors(
                path, container, stream, cell, decoder_options, threads, hog, describer
            )
    with _transcoded(path) as tmp:
        field = read_motion_field(
            tmp,
            cell,
            decoder_options=decoder_options,
            threads=threads,
            hog=hog,
            describer=describer,
        )
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
    hog: bool = False,
    describer: StreamingDescriber | None = None,
    quick: bool = False,
) -> MotionField | None:
    """The field of ``stream``; with ``quick``, None as soon as a frame fails or is damaged;
    with ``hog``, the luma's gradient histograms too; ``describer`` fed as frames settle."""
    ctx = stream.codec_context
    codec = ctx.name
    width, height = ctx.width, ctx.height  # before the decoder opens: lowres shrinks them
    options = dict(FAST_DECODER_OPTIONS if decoder_options is None else decoder_options)
    options["flags2"] = "+export_mvs"
    ctx.options = options
    if threads:
        ctx.thread_count = threads
    ctx.thread_type = "SLICE"
    if not width or not height:
        raise VideoError(f"{path}: video stream has no frame size")
    skip_b = codec in _CODECS_WITH_UNRELIABLE_B_VECTORS
    # H.264 may predict from any of several reference pictures: found in the decoded pixels.
    n_refs = reference_candidates(ctx.extradata) if codec == "h264" else 1
    with _workspace() as work:
        builder = _FieldBuilder(
            height,
            width,
            cell,
            b_references=codec not in _CODECS_WITHOUT_B_REFERENCES,
            skip_b=skip_b,
            frames_hint=stream.frames,
            work=work,
            n_refs=n_refs,
            hog=hog,
        )
        matcher = builder.matcher
        if describer is not None:
            describer.restart(height, width, cell, stream.frames)
        last_error = ""
        for items in _decoded(
            container,
            stream,
            b_vectors=not skip_b,
            check=quick,
            luma=matcher,
            nal_length=nal_length_size(ctx.extradata) if matcher else None,
            hog=(height, width) if hog else None,
        ):
            last_error = builder.add_items(items) or last_error
            if quick and last_error:
                return None
            if describer is not None:
                describer.advance(builder.flow, builder.hog, builder.final_frames)
        if not builder.n_frames:
            if quick:
                return None
            reason = f" ({last_error})" if last_error else ""
            raise VideoError(f"{path}: no frame decodes{reason}")
        flow, frame_types, has_vectors, times, hog_cells = builder.finish()
    fps = _frame_rate(stream)
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
        hog=hog_cells,
    )


_END = object()
_LUMA_IN_FLIGHT = 32 << 20  # bytes of luma on their way from the decoding thread, at most


def _vector_bytes(frame: av.VideoFrame) -> bytes | None:
    """A copy of the frame's ``MOTION_VECTORS`` side data (`raster._MV_DTYPE` records), or None.

    The side data is wrapped here rather than read through ``frame.side_data``: that property
    caches its wrapper on the frame, and the wrapper refers back to the frame, a cycle that
    keeps every decoded picture alive until the garbage collector runs (FFmpeg then allocates
    a fresh picture for each frame). The copy lets the picture go at once.
    """
    for data in SideDataContainer(frame):
        if type(data) is MotionVectors:
            return bytes(data)
    return None


def _decoded(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    *,
    b_vectors: bool = True,
    check: bool = False,
    batch: int = 16,
    luma: _ReferenceMatcher | None = None,
    nal_length: int | None = None,
    hog: tuple[int, int] | None = None,
) -> Iterator:
    """Demux and decode in a background thread (FFmpeg releases the GIL while it decodes).

    Yields lists of, in order: a packet as ``(pts, reference)`` (decode order; reference 1 or 0
    where an H.264 packet says whether its picture is a reference picture, read with the NAL
    length size ``nal_length`` (`nal_length_size`) if given, else −1), a decoded frame as
    ``(picture type, pts, seconds, vector bytes or None, luma, hog)`` (display order), or an error
    message (str) for a damaged stretch that was skipped; about ``batch`` frames per list. With
    ``b_vectors`` False the vectors of B-frames are not copied out; with ``check``, a frame the
    decoder marks as corrupt also comes with a message. With ``luma``, each frame's luma is
    stored in its ring as the frame is decoded, and ``luma`` in the tuple says whether it is
    usable (None without); the ring's free slots pace the decoding. With ``hog`` = (height,
    width), ``hog`` in the tuple is the frame's luma, `frame_luma` (None without): the
    histograms are the consumer's work, so that the decoding thread, the slower one, does not
    wait for them.
    """
    chunks = 64  # in flight; with HOG each frame's luma travels too: about 32 MB of it at most
    if hog is not None:
        chunks = max(2, min(chunks, _LUMA_IN_FLIGHT // (batch * hog[0] * hog[1] or 1)))
    items: queue.Queue = queue.Queue(maxsize=chunks)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                items.put(item, timeout=0.1)
                return

    def produce() -> None:
        out: list = []
        n_frames = 0
        reference_of_pts: dict[int, int] = {}  # of the packets whose frames have not come out

        def take(frame: av.VideoFrame) -> None:
            nonlocal out, n_frames
            kind = _PICTURE_TYPES.get(frame.pict_type, "?")
            time = frame.time
            usable = None
            if luma is not None:
                reference = reference_of_pts.pop(frame.pts, -1)
                usable = luma.store(frame, reference)
                if usable is None:  # the ring is full: hand over what we have, then wait
                    put(out)
                    out, n_frames = [], 0
                    while (usable := luma.store(frame, reference, wait=0.1)) is None:
                        if stop.is_set():
                            return
            out.append(
                (
                    kind,
                    frame.pts,
                    float(time) if time is not None else np.nan,
                    _vector_bytes(frame) if b_vectors or kind != "B" else None,
                    usable,
                    frame_luma(frame, *hog) if hog is not None else None,
                )
            )
            if check and frame.is_corrupt:
                out.append("a damaged frame")
            n_frames += 1
            if n_frames == batch:
                put(out)
                out, n_frames = [], 0

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
                    out.append(_reason(exc))
                    failures += 1
                    if failures > 100:
                        break
                    packets = container.demux(stream)
                    continue
                if packet.size and packet.pts is not None:
                    reference = -1
                    if nal_length is not None:
                        reference = packet_reference(packet, nal_length)
                        if luma is not None and len(reference_of_pts) < 1024:
                            reference_of_pts[int(packet.pts)] = reference
                    out.append((int(packet.pts), reference))
                try:
                    for frame in packet.decode():
                        take(frame)
                except av.error.FFmpegError as exc:
                    out.append(_reason(exc))
            with contextlib.suppress(av.error.FFmpegError):
                for frame in stream.codec_context.decode(None):
                    take(frame)
            put(out)
        except BaseException as exc:  # noqa: BLE001 — handed to the consumer and re-raised there
            put(exc)
        finally:
            put(_END)

    worker = threading.Thread(target=produce, name="actionlrp-decode", daemon=True)
    worker.start()
    try:
        while (chunk := items.get()) is not _END:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk
    finally:
        stop.set()
        worker.join()


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
