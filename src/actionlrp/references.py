"""How far back (or ahead) the reference picture of each motion vector lies (design §1).

FFmpeg exports a vector's reference only as past (``source < 0``) or future (``source > 0``),
not which picture it is. Two ways to a distance in frames:

* **Picture structure** (`_distances`), for every codec: the nearest earlier (later) reference
  picture in display order that was decoded before the frame — I, P, S, and in H.264 the
  referenced B-frames of a B-pyramid (H.264 packets say which pictures are references:
  `packet_reference`). Exact where a frame has one reference picture each way.
* **Pixels** (`_ReferenceMatcher`), for H.264 streams that keep several reference pictures
  (x264: 3 by default; the SPS says how many, `max_reference_frames`). The decoder
  reconstructs every picture anyway, so each inter block is compared with each candidate
  reference picture displaced by the block's vector, and the best match gives the distance.
  The candidates of frame ``j`` are the ``n_refs`` nearest reference pictures decoded before
  ``j`` on the vector's side of it in display order. The match is the sum of absolute luma
  differences over the block's rows 3, 11, 19 … (`_ROW`, `_ROW_STEP`), the candidate read
  bilinearly at the vector's quarter-pel position; ties go to the nearer picture. Cheaper
  where it can be: a vector equal to the previous block's (on its side) takes the same
  picture, and the candidate that gives the previous block's speed is tried first and kept
  if it matches within `_CLEAR` grey levels on average. Each vector's ``motion_scale`` is
  then multiplied by its distance, so that it carries its own. A frame whose luma, or a
  candidate's, is unusable (not 8-bit, interlaced, another size, damaged, out of the ring)
  keeps the structural distance.

The luma planes live in a ring of 16–192 frames that the decoding thread fills: memory stays
constant however long the clip.
"""

from __future__ import annotations

import threading

import av
import numpy as np
from av.video.plane import VideoPlane
from numba import njit

from actionlrp._scratch import _Workspace
from actionlrp.h264 import max_reference_frames

_WINDOW = 64  # frames: the farthest a reference frame is looked for in the picture structure
_DEFAULT_REFS = 4  # candidates each way when the stream does not say how many references it uses
_MAX_REFS = 16  # H.264's limit
_ROW, _ROW_STEP = 3, 8  # the match compares rows 3, 11, 19 … of the picture, every pixel
_CLEAR = 4  # grey levels: a first candidate this close on average is taken without the others
_RING_BYTES = 64 << 20  # of luma kept for the match
_MIN_SLOTS, _MAX_SLOTS = 16, 192  # frames in the ring
#: Pixel formats whose first plane is 8-bit luma.
_NO_LIMIT = np.iinfo(np.int64).max
_EIGHT_BIT_LUMA = frozenset(
    {
        "gray",
        "nv12",
        "nv21",
        "yuv410p",
        "yuv411p",
        "yuv420p",
        "yuv422p",
        "yuv440p",
        "yuv444p",
        "yuvj411p",
        "yuvj420p",
        "yuvj422p",
        "yuvj440p",
        "yuvj444p",
    }
)

#: The one signature each compiled kernel has. Declared, not inferred: a second signature
#: (empty arrays, say) would make two processes that fill numba's cache at the same time
#: overwrite each other's entries.
_SIGNATURES = {
    "_distances": "void(int8[::1], int64[::1], int64[::1], int8[::1], int64, boolean, boolean, "
    "float64[::1], float64[::1])",
    "_copy_luma": "boolean(uint8[::1], int64, uint8[:, :, ::1], int64, boolean)",
    "_match_frames": "void(uint8[:, :, ::1], boolean[::1], int64, int8[::1], int64[::1], "
    "int64[::1], int8[::1], boolean, int64, int64, int64, int64, int64[::1], "
    "int32[:], uint8[:], uint8[:], int16[:], int16[:], int32[:], int32[:], uint16[:], "
    "boolean[::1])",
}

_KIND_CODES = {"I": 0, "P": 0, "S": 0, "B": 1}  # 0: always a reference picture
_B, _OTHER = 1, 2


# --------------------------------------------------------------------------------------------
# From the picture structure


@njit(inline="always")
def _is_reference(kind, rank, display_of_rank, reference_of_rank, i, b_references):
    if (
        b_references
        and 0 <= rank[i] < reference_of_rank.shape[0]
        and reference_of_rank[rank[i]] >= 0
    ):
        return reference_of_rank[rank[i]] == 1  # the bitstream says (H.264's nal_ref_idc)
    if kind[i] == 0:
        return True
    if kind[i] != _B or not b_references:
        return False
    # The middle of a B-pyramid: the next frame decoded is shown before it.
    nxt = rank[i] + 1
    return 0 <= nxt < display_of_rank.shape[0] and 0 <= display_of_rank[nxt] < i


@njit(_SIGNATURES["_distances"], cache=True, nogil=True)
def _distances(
    kind, rank, display_of_rank, reference_of_rank, lo, b_references, use_rank, past, future
):
    """Frames from each of frames lo … lo + len(past) − 1 to its past and its future reference.

    ``kind`` (T,) holds `_KIND_CODES`, ``rank`` (T,) each frame's place in decode order;
    per decode rank, ``display_of_rank`` holds the display index (−1: not known) and
    ``reference_of_rank`` whether the picture is a reference (1), is not (0) or not known (−1:
    then I, P and S are, and B-frames only in the middle of a pyramid). The distance is that to
    the nearest earlier / later reference picture in display order that was decoded before the
    frame. ``past`` and ``future`` keep their value (1) where there is none within `_WINDOW`
    frames.
    """
    n = kind.shape[0]
    for j in range(lo, lo + past.shape[0]):
        for i in range(j - 1, max(-1, j - _WINDOW), -1):
            if _is_reference(kind, rank, display_of_rank, reference_of_rank, i, b_references) and (
                not use_rank or rank[i] < rank[j]
            ):
                past[j - lo] = j - i
                break
        if kind[j] == _B:
            for i in range(j + 1, min(n, j + _WINDOW)):
                if _is_reference(
                    kind, rank, display_of_rank, reference_of_rank, i, b_references
                ) and (not use_rank or rank[i] < rank[j]):
                    future[j - lo] = i - j
                    break


# --------------------------------------------------------------------------------------------
# From the pixels (H.264)


def reference_candidates(extradata: bytes | None) -> int:
    """How many reference pictures each way a block's match considers (1: no match needed)."""
    n_refs = max_reference_frames(extradata)
    return _DEFAULT_REFS if n_refs is None else int(min(max(n_refs, 1), _MAX_REFS))


class _ReferenceMatcher:
    """The luma of the last frames in a ring, and the reference picture of each block.

    Two threads share it. The decoding thread copies each frame's luma into the ring as soon
    as the frame is decoded (`store`), while the picture is still in its cache and FFmpeg can
    reuse it; the consuming thread learns of each frame in display order (`add`), which then
    gives the vectors of frames their distances (`match`) once the reference pictures after
    each of them that were decoded before it have come too (a B-frame waits for the next I- or
    P-frame). Frame ``i`` lives in slot
    ``i % n_slots``; the decoding thread waits before it would overwrite a frame a match may
    still read: those from ``released`` on, `reach` frames before the oldest not yet matched.
    The rest of the ring is how far the decoding may run ahead of the matching.
    """

    def __init__(self, height: int, width: int, n_refs: int, work: _Workspace) -> None:
        self.height, self.width, self.n_refs = height, width, n_refs
        self.n_slots = int(min(_MAX_SLOTS, max(_MIN_SLOTS, _RING_BYTES // (height * width))))
        # Frames kept before the oldest not yet matched, B-frames waiting for their anchor at
        # most, frames matched at once: together fewer than the slots, so the decoding thread,
        # which may run ahead by the rest, never waits for a match that waits for it.
        self.reach = min(self.n_slots // 2, 32)
        self.max_waiting = min(self.n_slots // 4, 16)
        self.batch = max(1, min(8, self.max_waiting // 2))
        self.ring = work.array("reference_luma", (self.n_slots, height, width), np.uint8)
        self.usable = np.zeros(self.n_slots, np.bool_)
        self.enabled = True
        self.n = 0  # frames added
        self.matchable = 0  # frames before this one have all their references come
        self.resolved = 0  # frames before this one are matched or left to the structure
        self.released = 0  # frames before this one may be overwritten
        self.stored = 0  # frames stored (decoding thread)
        self._released = threading.Event()  # set when ``released`` moves on

    def store(self, picture: av.VideoFrame, reference: int = -1, wait: float = 0.0) -> bool | None:
        """Decoding thread: copy the next frame's luma into its slot, waiting up to ``wait``
        seconds for the slot to be free; only the rows the match compares if the frame is not
        a reference picture (``reference`` 0; 1: it is, −1: not known). Returns whether the
        pixels are usable (8-bit, progressive, the stream's size, not damaged), or None if the
        slot is not free (nothing stored)."""
        stored = self.stored
        if stored - self.released >= self.n_slots:
            if not wait:
                return None
            self._released.clear()
            if stored - self.released >= self.n_slots:
                self._released.wait(wait)
            if stored - self.released >= self.n_slots:
                return None
        self.stored = stored + 1
        if (
            not self.enabled
            or picture.is_corrupt
            or picture.interlaced_frame  # its blocks may predict from single fields
            or picture.width != self.width
            or picture.height != self.height
            or picture.format.name not in _EIGHT_BIT_LUMA
        ):
            return False
        plane = VideoPlane(picture, 0)  # not ``picture.planes[0]``, which wraps every plane
        luma = np.frombuffer(plane, np.uint8)
        slot = stored % self.n_slots
        return _copy_luma(luma, plane.line_size, self.ring, slot, reference != 0)

    def add(self, usable: bool | None, anchor: bool, builder) -> None:
        """Consuming thread: the next frame came, its luma stored (``usable`` or not) or not;
        ``anchor``: an I- or P-frame. Matches the frames whose references have all come, a
        `batch` at a time. ``builder`` is the `actionlrp._field_builder._FieldBuilder` (see
        `match`)."""
        self.enabled &= builder.ranks_usable
        self.usable[self.n % self.n_slots] = bool(usable) and self.enabled
        self.n += 1
        if anchor:  # a B-frame waits for the next anchor: its later references come first
            self.matchable = self.n
        if self.n - self.matchable >= self.max_waiting:  # no anchor comes: go on without
            self.match(builder, self.n)
        elif self.matchable - self.resolved >= self.batch:
            self.match(builder, self.matchable)

    def match(self, builder, upto: int) -> None:
        """Scale the vectors of frames ``resolved … upto − 1`` by their reference distances.

        ``builder`` is the `actionlrp._field_builder._FieldBuilder` of the frames: its picture
        structure (``kind``, ``rank``, ``display_of_rank``, ``reference_of_rank``:
        `_distances`), its queued vectors (``raster``, from frame ``taken`` on), whose
        ``motion_scale`` is
        multiplied in place by each vector's distance in frames, and ``matched``, set per frame
        to whether its vectors now carry their distances (else the structural one applies).
        """
        lo = self.resolved
        if upto <= lo:
            return
        if self.enabled:
            n = builder.n_frames
            vectors, starts = builder.raster.queued()
            _match_frames(
                self.ring,
                self.usable,
                self.released,
                builder.kind[:n],
                builder.rank[:n],
                builder.display_of_rank,
                builder.reference_of_rank,
                builder.b_references and builder.ranks_usable,
                lo,
                upto,
                self.n_refs,
                builder.taken,
                starts,
                *(vectors[name] for name in ("source", "w", "h", "dst_x", "dst_y")),
                *(vectors[name] for name in ("motion_x", "motion_y", "motion_scale")),
                builder.matched,
            )
        else:
            builder.matched[lo:upto] = False
        self.resolved = upto
        if upto - self.reach > self.released:
            self.released = upto - self.reach
            self._released.set()


@njit(_SIGNATURES["_copy_luma"], cache=True, nogil=True)
def _copy_luma(plane, line, ring, slot, every_row):
    """Copy a luma plane, rows of ``line`` bytes, into ``ring[slot]`` (without ``every_row``
    only the rows the match compares: `_ROW`, `_ROW` + `_ROW_STEP` …); False if too short.

    Unsigned indices: no wrap-around test, so the row loop vectorises (slices would not)."""
    height, width = ring.shape[1], ring.shape[2]
    if line < width or plane.shape[0] < (height - 1) * line + width:
        return False
    first, step = (0, 1) if every_row else (_ROW, _ROW_STEP)
    slot, line = np.uint64(slot), np.uint64(line)
    for y in range(np.uint64(first), np.uint64(height), np.uint64(step)):
        start = y * line
        for x in range(np.uint64(width)):
            ring[slot, y, x] = plane[start + x]
    return True


@njit(inline="always")
def _available(usable, oldest, i):
    return i >= oldest and usable[i % usable.shape[0]]


@njit(inline="always")
def _candidates(usable, oldest, kind, rank, structure, b_references, j, slot, dist, count):
    """The reference pictures frame ``j`` may predict from, nearest first: ``slot[side, c]``,
    ``dist[side, c]`` (frames) for side 0 (past) and 1 (future), ``count[side]`` of them; none
    before ``oldest``. False where one of them is not usable (damaged, say)."""
    display_of_rank, reference_of_rank = structure
    n, n_refs, n_slots = kind.shape[0], slot.shape[1], usable.shape[0]
    count[0] = count[1] = 0
    for i in range(j - 1, oldest - 1, -1):
        if (
            _is_reference(kind, rank, display_of_rank, reference_of_rank, i, b_references)
            and rank[i] < rank[j]
        ):
            if not _available(usable, oldest, i):
                return False
            slot[0, count[0]], dist[0, count[0]] = i % n_slots, j - i
            count[0] += 1
            if count[0] == n_refs:
                break
    if kind[j] == _B:
        for i in range(j + 1, n):
            if (
                _is_reference(kind, rank, display_of_rank, reference_of_rank, i, b_references)
                and rank[i] < rank[j]
            ):
                if not _available(usable, oldest, i):
                    return False
                slot[1, count[1]], dist[1, count[1]] = i % n_slots, i - j
                count[1] += 1
                if count[1] == n_refs:
                    break
    return True


@njit(inline="always")
def _sad(ring, current, reference, x0, y0, bw, bh, mx, my, scale, limit):
    """Σ |ring[current] − ring[reference] displaced by (mx, my) / scale| over the rows of the
    block (x0, y0, bw, bh) that are `_ROW` modulo `_ROW_STEP`, in 1 / scale² grey levels; the
    reference read bilinearly, clamped at the picture's edge. Stops once past ``limit``.

    Indexed with unsigned integers inside the picture (no wrap-around test, so the row loop
    vectorises), and into ``ring`` rather than through slices of it (each costs two atomic
    reference counts)."""
    height, width = ring.shape[1], ring.shape[2]
    top = (_ROW - y0) % _ROW_STEP  # the first row compared, from y0
    # The displacement's whole and fractional pixels (floor), the same for every pixel.
    ox, oy = mx // scale, my // scale
    fx, fy = mx - ox * scale, my - oy * scale
    w00, w01 = np.int32((scale - fx) * (scale - fy)), np.int32(fx * (scale - fy))
    w10, w11 = np.int32((scale - fx) * fy), np.int32(fx * fy)
    unit = np.int32(scale * scale)
    total = 0
    if (
        x0 >= 0
        and y0 >= 0
        and x0 + bw <= width
        and y0 + bh <= height
        and x0 + ox >= 0
        and y0 + oy >= 0
        and x0 + bw + ox < width
        and y0 + bh + oy < height
    ):
        one = np.uint64(1)
        cur, ref, left, shifted = (
            np.uint64(current),
            np.uint64(reference),
            np.uint64(x0),
            np.uint64(x0 + ox),
        )
        for sy in range(top, bh, _ROW_STEP):
            y, r = np.uint64(y0 + sy), np.uint64(y0 + sy + oy)
            part = np.int32(0)
            for k in range(np.uint64(bw)):
                c = shifted + k
                value = w00 * np.int32(ring[ref, r, c]) + w01 * np.int32(ring[ref, r, c + one])
                value += w10 * np.int32(ring[ref, r + one, c])
                value += w11 * np.int32(ring[ref, r + one, c + one])
                part += abs(value - unit * np.int32(ring[cur, y, left + k]))
            total += part
            if total > limit:
                break
        return total
    for sy in range(top, bh, _ROW_STEP):  # at the edge: clamped like H.264's padding
        y = y0 + sy
        if y < 0 or y >= height:
            continue
        r0, r1 = min(max(y + oy, 0), height - 1), min(max(y + oy + 1, 0), height - 1)
        for x in range(max(x0, 0), min(x0 + bw, width)):
            c0, c1 = min(max(x + ox, 0), width - 1), min(max(x + ox + 1, 0), width - 1)
            value = w00 * np.int32(ring[reference, r0, c0])
            value += w01 * np.int32(ring[reference, r0, c1])
            value += w10 * np.int32(ring[reference, r1, c0])
            value += w11 * np.int32(ring[reference, r1, c1])
            total += abs(value - unit * np.int32(ring[current, y, x]))
        if total > limit:
            break
    return total


@njit(_SIGNATURES["_match_frames"], cache=True, nogil=True)
def _match_frames(
    ring,
    usable,
    oldest,
    kind,
    rank,
    display_of_rank,
    reference_of_rank,
    b_references,
    lo,
    hi,
    n_refs,
    first,
    starts,
    source,
    w,
    h,
    dst_x,
    dst_y,
    motion_x,
    motion_y,
    motion_scale,
    matched,
):
    """Multiply each vector's ``motion_scale`` of frames lo … hi − 1 by its distance in frames
    to the candidate reference picture its block matches best; ``matched[j]`` says whether frame
    j was (frame j's vectors are ``starts[j − first] … starts[j − first + 1] − 1``; frame i's
    luma is ``ring[i % len(ring)]`` for frames from ``oldest`` on, where ``usable``)."""
    n_slots = ring.shape[0]
    slot = np.empty((2, n_refs), np.int64)
    dist = np.empty((2, n_refs), np.int64)
    count = np.zeros(2, np.int64)
    last = np.zeros(2, np.int64)  # per side, the candidate the previous block took
    last_motion = np.zeros((2, 2), np.int64)  # and its vector
    structure = (display_of_rank, reference_of_rank)
    for j in range(lo, hi):
        matched[j] = False
        a, b = starts[j - first], starts[j - first + 1]
        if a == b or not _available(usable, oldest, j):
            continue
        if not _candidates(
            usable, oldest, kind, rank, structure, b_references, j, slot, dist, count
        ):
            continue
        missing = False
        for v in range(a, b):
            missing |= count[1 if source[v] > 0 else 0] == 0
        if missing:
            continue
        current = j % n_slots
        last[:] = 0
        last_motion[:] = 0
        for v in range(a, b):
            side = 1 if source[v] > 0 else 0
            scale = max(np.int64(motion_scale[v]), 1)
            mx, my = np.int64(motion_x[v]), np.int64(motion_y[v])
            best = last[side]
            # A vector that repeats the previous block's (on its side) keeps its reference.
            px, py = last_motion[side, 0], last_motion[side, 1]
            if count[side] > 1 and (mx != 0 or my != 0) and (mx != px or my != py):
                bw, bh = np.int64(w[v]), np.int64(h[v])
                x0, y0 = np.int64(dst_x[v]) - bw // 2, np.int64(dst_y[v]) - bh // 2
                # First the candidate that gives the previous block's speed (neighbours move
                # alike), taken if it matches within `_CLEAR`; else the best of all.
                if px != 0 or py != 0:
                    pd, closest = dist[side, best], _NO_LIMIT
                    for c in range(count[side]):
                        ex, ey = mx * pd - px * dist[side, c], my * pd - py * dist[side, c]
                        if ex * ex + ey * ey < closest:
                            best, closest = c, ex * ex + ey * ey
                least = _sad(
                    ring, current, slot[side, best], x0, y0, bw, bh, mx, my, scale, _NO_LIMIT
                )
                rows = (bh - (_ROW - y0) % _ROW_STEP + _ROW_STEP - 1) // _ROW_STEP
                if least > _CLEAR * scale * scale * bw * rows:
                    for c in range(count[side]):
                        if c == best:
                            continue
                        sad = _sad(
                            ring, current, slot[side, c], x0, y0, bw, bh, mx, my, scale, least
                        )
                        if sad < least or (sad == least and dist[side, c] < dist[side, best]):
                            best, least = c, sad
                last[side] = best
                last_motion[side, 0], last_motion[side, 1] = mx, my
            elif mx == 0 and my == 0:
                best = 0
            motion_scale[v] = scale * dist[side, best]
        matched[j] = True
