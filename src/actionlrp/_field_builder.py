"""Decoded frames into flow (design §1): the consuming side of `actionlrp.codec`'s decoding.

`_FieldBuilder` takes what the decoding thread hands over — packets in decode order, frames in
display order with their motion vectors (and, for H.264 with several references, their luma in
a `actionlrp.references._ReferenceMatcher`'s ring; with HOG, a copy of it for the histograms,
computed here) — and turns them into the clip's flow a batch at a time: vectors splatted into
per-cell sums (`actionlrp.raster`), divided by their reference distances once the frames that
decide them have come, gaps filled as soon as the next value of a cell is known. Only a few
frames' sums are held: memory is the field plus a constant.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from actionlrp._scratch import _Workspace
from actionlrp.hog import HOG_BINS, luma_histograms_into
from actionlrp.raster import _combine, _GapFiller, _Rasteriser
from actionlrp.references import _B, _KIND_CODES, _OTHER, _distances, _ReferenceMatcher

_MAX_PREALLOCATED_BYTES = 1 << 30  # of flow, before any frame has been decoded
#: The one signature each compiled kernel has. Declared, not inferred: a second signature
#: (empty arrays, say) would make two processes that fill numba's cache at the same time
#: overwrite each other's entries.
_SIGNATURES = {
    "_fill_b_from_next_anchor": "void(float32[:, :, :, ::1], int8[::1], boolean[::1])",
}


class _FieldBuilder:
    """Streams decoded frames into flow: vectors → per-cell sums → flow, a batch at a time.

    A frame becomes flow once the frames that decide its reference distances have been decoded
    (``lag`` frames later); its missing cells are filled as soon as the next value of each cell
    is known. With ``n_refs`` > 1 (H.264 with several reference pictures) each frame's vectors
    are splatted once its `matcher` has found their reference pictures in the luma the decoding
    thread stored in it. Only a few frames' sums (and luma planes) are ever held: memory is the
    field plus a constant. The numeric work runs in compiled kernels that release the GIL,
    so that the decoding thread, which needs the GIL between frames, is held up as little as
    possible.
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
        frames_hint: int = 0,
        work: _Workspace | None = None,
        n_refs: int = 1,
        hog: bool = False,
    ) -> None:
        work = work or _Workspace()
        self.raster = _Rasteriser(height, width, cell, work)
        self.matcher = _ReferenceMatcher(height, width, n_refs, work) if n_refs > 1 else None
        matcher = self.matcher  # frames it may hold back:
        waiting = matcher.max_waiting + matcher.batch if matcher else 0
        self.b_references, self.skip_b = b_references, skip_b
        self.batch, self.lag = batch, lag
        self.packet_rank: dict[int, int] = {}
        self.types: list[str] = []
        self.times: list[float] = []
        self.ranks_usable = True
        self.last_pts = -np.inf
        gh, gw = self.raster.gh, self.raster.gw
        self.settled = 0  # frames before this index are in ``flow``, filled where they can be
        self.taken = 0  # frames before this index are splatted (their sums in ``pending``)
        # The container's frame count, if it has one, sizes the field (within reason).
        frames = min(max(frames_hint, 2 * batch), _MAX_PREALLOCATED_BYTES // (gh * gw * 8))
        self.flow = np.empty((frames, gh, gw, 2), np.float32)
        self.hog = np.empty((frames, gh, gw, HOG_BINS), np.float32) if hog else None
        self.gaps = _GapFiller(gh * gw)
        # Per frame: picture kind (`_KIND_CODES`), decode rank, whether it carried vectors,
        # whether its vectors carry their own reference distances (`_ReferenceMatcher`);
        # per decode rank: the display index of that frame (−1: not known).
        self.kind = np.empty(frames, np.int8)
        self.rank = np.empty(frames, np.int64)
        self.has_vectors = np.empty(frames, np.bool_)
        self.matched = np.zeros(frames, np.bool_)
        self.display_of_rank = np.full(frames, -1, np.int64)
        self.reference_of_rank = np.full(frames, -1, np.int8)  # 1, 0 or −1: not known
        # The per-cell sums of frames settled … taken − 1 (at most lag + batch + waiting).
        self.pending = work.array("field_sums", (batch + lag + waiting, 2, 3, gh, gw))

    @property
    def n_frames(self) -> int:
        return len(self.types)

    def add_items(self, items: list) -> str:
        """Take a chunk of `_decoded`: packet timestamps (decode order) and frames (display
        order). Returns the chunk's last error message ("" if none)."""
        error = ""
        packet_rank, types, times = self.packet_rank, self.types, self.times
        for item in items:
            if type(item) is str:
                error = item
                continue
            if len(item) == 2:  # a packet
                pts, reference = item
                rank = packet_rank.setdefault(pts, len(packet_rank))
                if reference >= 0:
                    if rank >= len(self.reference_of_rank):
                        self.reference_of_rank = _grown(
                            self.reference_of_rank, 2 * rank + 2, fill=-1
                        )
                    self.reference_of_rank[rank] = reference
                continue
            kind, pts, seconds, vectors, luma, hog = item
            if kind == "B" and self.skip_b:
                vectors = None
            j = len(types)
            if j == len(self.kind):
                self._grow()
            rank = packet_rank.get(pts, -1) if pts is not None else -1
            if rank < 0 or pts <= self.last_pts:
                self.ranks_usable = False  # e.g. AVI: no presentation order to match packets by
            else:
                self.last_pts = pts
                if rank >= len(self.display_of_rank):
                    self.display_of_rank = _grown(self.display_of_rank, 2 * rank + 2, fill=-1)
                self.display_of_rank[rank] = j
            if self.hog is not None:
                if j == len(self.hog):
                    self.hog = _grown(self.hog, max(2 * j, 2 * self.batch))
                luma_histograms_into(hog, self.raster.cell, self.hog[j])
            types.append(kind)
            times.append(seconds)
            self.kind[j] = _KIND_CODES.get(kind, _OTHER)
            self.rank[j] = rank
            self.has_vectors[j] = bool(vectors)
            self.raster.add(vectors)
            if self.matcher is not None:
                self.matcher.add(luma, kind != "B", self)
            if self._ready - self.taken >= self.batch:
                self._advance(final=False)
        return error

    @property
    def final_frames(self) -> int:
        """Frames before this index are in ``flow`` for good: settled, every gap filled."""
        return min(self.settled, int(self.gaps.last_valid.min(initial=self.settled)) + 1)

    @property
    def _ready(self) -> int:
        """Frames before this index may be splatted."""
        return self.n_frames if self.matcher is None else self.matcher.resolved

    def _grow(self) -> None:
        n = max(2 * len(self.kind), 2 * self.batch)
        self.kind, self.rank = _grown(self.kind, n), _grown(self.rank, n)
        self.has_vectors = _grown(self.has_vectors, n)
        self.matched = _grown(self.matched, n, fill=False)

    def _advance(self, final: bool) -> None:
        if final and self.matcher is not None:
            self.matcher.match(self, self.n_frames)
        ready = self._ready
        if ready > self.taken:
            start = self.taken - self.settled
            self.raster.take(self.pending[start : start + ready - self.taken], ready - self.taken)
            self.taken = ready
        upto = ready if final else ready - self.lag
        if upto <= self.settled:
            return
        lo, n = self.settled, ready
        # B-frames without vectors copy the next anchor, which may lie beyond ``upto``: those
        # frames are written provisionally, and again when they settle.
        hi = n if self.skip_b else upto
        if hi > len(self.flow):  # more frames than the container announced
            self.flow = _grown(self.flow, max(hi, len(self.flow) * 3 // 2), keep=lo)
        past, future = np.ones(hi - lo), np.ones(hi - lo)
        b_references = self.b_references and self.ranks_usable
        kind, rank = self.kind[: self.n_frames], self.rank[: self.n_frames]
        structure = (self.display_of_rank, self.reference_of_rank)
        _distances(kind, rank, *structure, lo, b_references, self.ranks_usable, past, future)
        matched = self.matched[lo:hi]  # their vectors carry their own distances
        past[matched] = future[matched] = 1.0
        _combine(self.pending[: hi - lo], past, future, self.flow[lo:hi])
        if self.skip_b:
            _fill_b_from_next_anchor(self.flow[lo:hi], kind[lo:hi], self.has_vectors[lo:hi])
        self.gaps.add(self.flow[:upto].reshape(upto, -1, 2), lo)
        keep = n - upto
        self.pending[:keep] = self.pending[upto - lo : upto - lo + keep]
        self.settled = upto

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``flow`` (T, gh, gw, 2) filled, ``frame_types``, ``has_vectors``, ``timestamps``,
        ``hog`` (T, gh, gw, 8) or None."""
        self._advance(final=True)
        t = self.n_frames
        flow = self.flow[:t] if t == len(self.flow) else self.flow[:t].copy()
        self.flow = self.flow[:0]
        self.gaps.finish(flow.reshape(t, -1, 2))
        return (
            flow,
            np.asarray(self.types),
            self.has_vectors[:t].copy(),
            np.asarray(self.times, dtype=np.float64),
            None if self.hog is None else self.hog[:t].copy(),
        )


def _grown(a: np.ndarray, n: int, keep: int | None = None, fill=None) -> np.ndarray:
    """``a`` with room for ``n`` entries along axis 0, its first ``keep`` (all) entries kept."""
    keep = len(a) if keep is None else keep
    out = np.empty((n, *a.shape[1:]), a.dtype) if fill is None else np.full(n, fill, a.dtype)
    out[:keep] = a[:keep]
    return out


@njit(_SIGNATURES["_fill_b_from_next_anchor"], cache=True, nogil=True)
def _fill_b_from_next_anchor(flow, kind, has_vectors):
    """Give each B-frame without vectors the flow of the next P-frame, whose vectors span it."""
    nxt = -1
    for j in range(kind.shape[0] - 1, -1, -1):
        if kind[j] != _B and has_vectors[j]:
            nxt = j
        elif kind[j] == _B and nxt >= 0:
            source, target = flow[nxt].ravel(), flow[j].ravel()
            for i in range(target.size):
                target[i] = source[i]
