"""Motion-vector blocks on the cell grid, and the cells and frames that have none (design §1).

`actionlrp.codec` decodes a clip and hands each frame's motion vectors (FFmpeg's
``AVMotionVector`` records, `_MV_DTYPE`) to the code here, a batch of frames at a time:

* **What a block contributes to a cell.** Each block, centred on its ``dst`` and clipped to the
  frame, is cut along the grid of ``cell`` × ``cell`` pixels; every piece adds area · flow and
  its area to its cell, separately for vectors to a past and to a future reference
  (`_Rasteriser`, `_splat`). A cell's flow, in pixels per frame, is Σ area · flow / Σ area over
  the inter blocks that cover it (`_combine`): a cell that is only partly covered takes the
  area-weighted mean of the blocks that do cover it, and one that no inter block covers is NaN.
  Past reference at distance d: flow = (dst − src) / d; future reference at distance d:
  flow = (src − dst) / d. The distances come from the picture structure (`actionlrp.codec`).
* **How gaps are filled.** Frames without vectors (I-frames, and frames whose side data is
  missing) and cells that no inter block covers (intra-coded blocks inside P/B frames) are
  missing. Each missing cell takes the mean of the nearest earlier and the nearest later value
  of that cell that came from a vector (only one of them at the start or the end of the clip;
  zero where the clip has none): `fill_missing`, or `_GapFiller` for flow that arrives a few
  frames at a time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from actionlrp._scratch import _Workspace
from actionlrp.video import grid_size

#: The one signature each compiled kernel has. Declared, not inferred: a second signature
#: (empty arrays, say) would make two processes that fill numba's cache at the same time
#: overwrite each other's entries.
_SIGNATURES = {
    "_splat": "void(int32[:], uint8[:], uint8[:], int16[:], int16[:], int32[:], int32[:], "
    "uint16[:], int64[::1], int64, int64, int64, float32[:, :, :, :, ::1])",
    "_combine_sums": "void(float32[:, :, :, :, ::1], float32[::1], float32[::1], "
    "float32[:, :, :, ::1])",
    "_fill_gaps": "void(float32[:, :, ::1], int64, int64[::1], boolean)",
}


#: One ``AVMotionVector`` as FFmpeg lays it out (PyAV's ``MotionVectors.to_ndarray`` dtype).
_MV_DTYPE = np.dtype(
    [
        ("source", "int32"),
        ("w", "uint8"),
        ("h", "uint8"),
        ("src_x", "int16"),
        ("src_y", "int16"),
        ("dst_x", "int16"),
        ("dst_y", "int16"),
        ("flags", "uint64"),
        ("motion_x", "int32"),
        ("motion_y", "int32"),
        ("motion_scale", "uint16"),
    ],
    align=True,
)


class _Rasteriser:
    """Area-weighted splatting of codec blocks onto the ``cell``-px grid.

    Vectors are buffered and splatted for many frames at once, so the work is per batch, not
    per frame.
    """

    def __init__(self, height: int, width: int, cell: int, work: _Workspace) -> None:
        self.height, self.width, self.cell = height, width, cell
        self.gh, self.gw = grid_size(height, width, cell)
        self._work = work
        self._vectors = work.array("field_vectors", (1 << 20,), np.uint8)  # the queued vectors
        self._bytes = memoryview(self._vectors)
        self._starts = [0]  # where each queued frame's vectors start, in vectors

    @property
    def n_queued(self) -> int:
        return len(self._starts) - 1

    def add(self, vectors: bytes | None) -> None:
        """Queue one frame's vectors (None or empty: a frame without vectors)."""
        end = self._starts[-1]
        if vectors:
            used = end * _MV_DTYPE.itemsize
            if used + len(vectors) > len(self._vectors):
                grown = self._work.array("field_vectors", (2 * (used + len(vectors)),), np.uint8)
                grown[:used] = self._vectors[:used]
                self._vectors, self._bytes = grown, memoryview(grown)
            self._bytes[used : used + len(vectors)] = vectors
            end += len(vectors) // _MV_DTYPE.itemsize
        self._starts.append(end)

    def queued(self) -> tuple[np.ndarray, np.ndarray]:
        """The queued vectors (a writable `_MV_DTYPE` view), and where the vectors of each
        queued frame start with one past the last (int64, n + 1)."""
        starts = np.asarray(self._starts, np.int64)
        return self._vectors[: starts[-1] * _MV_DTYPE.itemsize].view(_MV_DTYPE), starts

    def take(self, out: np.ndarray, n: int | None = None) -> None:
        """Sums of the first ``n`` (all) queued frames into ``out`` (n, 2, 3, gh, gw): past /
        future × (Σa·dx, Σa·dy, Σa), float32; the frames after them stay queued."""
        vectors, starts = self.queued()
        n = len(starts) - 1 if n is None else n
        fields = (vectors[name] for name in ("source", "w", "h", "dst_x", "dst_y"))
        motion = (vectors[name] for name in ("motion_x", "motion_y", "motion_scale"))
        _splat(*fields, *motion, starts[: n + 1], self.width, self.height, self.cell, out)
        size, done = _MV_DTYPE.itemsize, starts[n]
        if done < starts[-1]:
            self._vectors[: (starts[-1] - done) * size] = self._vectors[
                done * size : starts[-1] * size
            ]
        self._starts = (starts[n:] - done).tolist()


@njit(_SIGNATURES["_splat"], cache=True, nogil=True)
def _splat(
    source, w, h, dst_x, dst_y, motion_x, motion_y, motion_scale, starts, width, height, cell, out
):
    """Σ area·dx, Σ area·dy, Σ area per frame, direction and cell into ``out`` (n, 2, 3, gh, gw),
    float32; frame f has vectors ``starts[f] … starts[f + 1] − 1``.

    ``dx, dy = dst − src`` in pixels (FFmpeg: ``src = dst + motion / scale``). Each block is
    cut into its pieces on the cell grid; a piece weighs its area inside the frame. Every term
    is a small multiple of 1 / scale, so the float64 sums are exact in any order.
    """
    sums = np.empty(out.shape[1:])  # one frame's, float64
    for f in range(out.shape[0]):
        if starts[f] == starts[f + 1]:  # a frame without vectors
            out[f] = 0.0
            continue
        sums[:] = 0.0
        for v in range(starts[f], starts[f + 1]):
            scale = np.float32(max(motion_scale[v], 1))
            dx = -np.float32(motion_x[v]) / scale
            dy = -np.float32(motion_y[v]) / scale
            x0, y0 = np.int64(dst_x[v]) - w[v] // 2, np.int64(dst_y[v]) - h[v] // 2
            x1, y1 = min(x0 + w[v], width), min(y0 + h[v], height)
            x0, y0 = max(x0, 0), max(y0, 0)
            acc = sums[1 if source[v] > 0 else 0]
            for row in range(y0 // cell, (y1 - 1) // cell + 1):
                oy = min(y1, (row + 1) * cell) - max(y0, row * cell)
                for col in range(x0 // cell, (x1 - 1) // cell + 1):
                    ox = min(x1, (col + 1) * cell) - max(x0, col * cell)
                    if oy > 0 and ox > 0:
                        area = np.float32(oy * ox)
                        acc[0, row, col] += area * dx
                        acc[1, row, col] += area * dy
                        acc[2, row, col] += area
        flat_out, flat_sums = out[f].ravel(), sums.ravel()
        for i in range(flat_sums.size):
            flat_out[i] = flat_sums[i]


def _combine(acc: np.ndarray, past: np.ndarray, future: np.ndarray, out: np.ndarray) -> None:
    """Flow into ``out`` (T, gh, gw, 2) from the per-direction sums ``acc`` (T, 2, 3, gh, gw);
    NaN where no inter block covers a cell.

    Past reference at distance d: flow = (dst − src) / d. Future reference at distance d:
    flow = (src − dst) / d (design §1).
    """
    inv_past = (1.0 / past).astype(np.float32)
    inv_future = (1.0 / future).astype(np.float32)
    _combine_sums(acc, inv_past, inv_future, out)


@njit(_SIGNATURES["_combine_sums"], cache=True, nogil=True, error_model="numpy")
def _combine_sums(acc, inv_past, inv_future, out):
    """(Σa·d_past · inv_past − Σa·d_future · inv_future) / Σa per frame and cell, in float32
    (0 / 0 = NaN)."""
    t, gh, gw = out.shape[0], out.shape[1], out.shape[2]
    for f in range(t):
        past, future = acc[f, 0], acc[f, 1]
        for r in range(gh):
            for c in range(gw):
                weight = past[2, r, c] + future[2, r, c]
                for k in range(2):
                    flow = past[k, r, c] * inv_past[f] - future[k, r, c] * inv_future[f]
                    out[f, r, c, k] = flow / weight


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
    if out is None:
        out = np.array(flow, np.float32)
    elif out is not flow:
        out[...] = flow
    flat = np.ascontiguousarray(out, np.float32).reshape(out.shape[0], -1, 2)
    gaps = _GapFiller(flat.shape[1])
    gaps.add(flat, 0)
    gaps.finish(flat)
    if not np.shares_memory(flat, out):
        out[...] = flat.reshape(out.shape)
    return out


class _GapFiller:
    """`fill_missing` for flow that arrives in time order, a few frames at a time.

    A missing cell is filled as soon as the next valid value of that cell has arrived; a cell
    still waiting for one at the end takes the last valid value (0 if it never had one).
    """

    def __init__(self, n_cells: int) -> None:
        self.last_valid = np.full(n_cells, -1, np.int64)  # per cell: its last valid frame

    def add(self, flat: np.ndarray, lo: int) -> None:
        """Fill what can be filled once frames lo … T − 1 of ``flat`` (T, cells, 2) arrived.

        Frames before ``lo`` are those of earlier calls: their valid cells keep their values,
        their gaps still open (after the cell's last valid frame) are filled here when the new
        frames close them.
        """
        _fill_gaps(flat, lo, self.last_valid, False)

    def finish(self, flat: np.ndarray) -> None:
        """Close the gaps still open at the end of ``flat`` (T, cells, 2)."""
        _fill_gaps(flat, flat.shape[0], self.last_valid, True)


@njit(inline="always")
def _fill_gap(flat, c, prev, nxt):
    """Frames prev + 1 … nxt − 1 of cell c: the mean of its values at ``prev`` (none if < 0) and
    ``nxt`` (none if ≥ T), 0 where neither exists, in float32."""
    zero = np.float32(0.0)
    has_prev, has_next = prev >= 0, nxt < flat.shape[0]
    count = np.float32(max(int(has_prev) + int(has_next), 1))
    for k in range(2):
        total = flat[prev, c, k] if has_prev else zero
        total += flat[nxt, c, k] if has_next else zero
        value = total / count
        for f in range(prev + 1, nxt):
            flat[f, c, k] = value


@njit(_SIGNATURES["_fill_gaps"], cache=True, nogil=True)
def _fill_gaps(flat, lo, last_valid, final):
    """Fill the gaps of each cell of ``flat`` (T, cells, 2) that a valid value among frames
    lo … T − 1 closes (with ``final``, also those still open at T); ``last_valid`` (cells,)
    is each cell's last valid frame so far, updated."""
    t, cells = flat.shape[0], flat.shape[1]
    for f in range(lo, t):
        for c in range(cells):
            if not np.isnan(flat[f, c, 0]):
                if f - last_valid[c] > 1:
                    _fill_gap(flat, c, last_valid[c], f)
                last_valid[c] = f
    if final:
        for c in range(cells):
            if last_valid[c] < t - 1:
                _fill_gap(flat, c, last_valid[c], t)
                last_valid[c] = t - 1
