"""Cubes from cell histograms (design §2, "Assembly" and "Normalisation"): where the cubes of
one size lie (`_CubeGrid`), their boxes, and their normalised descriptors, the last step of
`actionlrp.descriptors` after `actionlrp._cell_histograms`.

A cube is 2 × 2 spatial × 3 temporal cells. The histograms of each time cell are summed over
``cs × cs`` grid cells at every position by shifted adds (`_spatial_sums_into`); a compiled
kernel (numba, `_gather_cubes`) then copies each cube's 12 cells into its row of the output and
normalises the row (RootSIFT with its mass floor, or L2; the whole cube or each time slice), in
one pass over the output with no per-cube Python loop, summing exactly as numpy would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numba import njit

from actionlrp._cell_histograms import N_ORIENTATIONS
from actionlrp._scratch import _Workspace

if TYPE_CHECKING:
    from actionlrp.descriptors import DescriptorParams

_SPATIAL_CELLS = 2
_TIME_CELLS = 3
_NORMALIZATIONS = {"none": 0, "root": 1, "l2": 2}


class _CubeGrid(NamedTuple):
    """Where the cubes of one size lie, in grid cells of the motion field."""

    cs: int  # side of a spatial cell
    ss: int  # stride
    ny: int  # cubes per column
    nx: int  # cubes per row
    cell: int  # px per grid cell


def _cube_grid(
    height: int, width: int, c: int, params: DescriptorParams, cube_px: int
) -> _CubeGrid:
    """Where the cubes of side ``cube_px`` lie in a ``height`` × ``width`` px field of ``c``-px
    grid cells."""
    cs = cube_px // _SPATIAL_CELLS // c
    ss = params.strides()[params.cube_px.index(cube_px)] // c
    rows, cols = height // c, width // c  # grid cells wholly inside the frame
    ny = (rows - _SPATIAL_CELLS * cs) // ss + 1 if rows >= _SPATIAL_CELLS * cs else 0
    nx = (cols - _SPATIAL_CELLS * cs) // ss + 1 if cols >= _SPATIAL_CELLS * cs else 0
    return _CubeGrid(cs, ss, ny, nx, c)


def _cube_boxes(
    grid: _CubeGrid, params: DescriptorParams, cube_px: int, nt: int, t_offset: int
) -> np.ndarray:
    """(nt · ny · nx, 6) int32 boxes of the cubes starting at ``t_offset`` + 0, cf, 2·cf …"""
    cf, step = params.cell_frames, grid.ss * grid.cell
    t0 = (t_offset + np.arange(nt) * cf)[:, None, None]
    y0 = (np.arange(grid.ny) * step)[None, :, None]
    x0 = (np.arange(grid.nx) * step)[None, None, :]
    boxes = np.empty((nt, grid.ny, grid.nx, 6), np.int32)
    for k, value in enumerate((t0, t0 + _TIME_CELLS * cf, y0, y0 + cube_px, x0, x0 + cube_px)):
        boxes[..., k] = value
    return boxes.reshape(-1, 6)


def _cubes_into(
    hist: np.ndarray,
    grid: _CubeGrid,
    normalization: str,
    out: np.ndarray,
    work: _Workspace,
    floor: float = 0.0,
    parts: int = 1,
) -> None:
    """The normalised descriptors of every cube whose time cells ``hist`` (n, gh, gw, B) holds,
    into the rows of ``out`` ((n − 2) · ny · nx, 12 · B), by time, then row, then column; each
    of a row's ``parts`` equal segments (1: the whole cube, 3: each time slice) on its own.

    design §2: every cube from spatial cell sums, gathered in one pass.
    """
    n, gh, gw, n_bins = hist.shape
    cells = work.array(f"cells_{n_bins}", (n, gh - grid.cs + 1, gw - grid.cs + 1, n_bins))
    _spatial_sums_into(hist, grid.cs, cells, work)
    nt = n - _TIME_CELLS + 1
    code = _NORMALIZATIONS[normalization]
    _gather_cubes(
        cells, nt, grid.ny, grid.nx, grid.cs, grid.ss, code, np.float32(floor / parts), parts, out
    )


def _spatial_sums_into(h: np.ndarray, cs: int, out: np.ndarray, work: _Workspace) -> None:
    """Sums of ``h`` (n, gh, gw, B) over ``cs × cs`` grid cells at every position, into ``out``
    (n, gh − cs + 1, gw − cs + 1, B): rows first, then columns."""
    n, gh, gw, n_bins = h.shape
    if cs == 1:
        out[...] = h
        return
    rows = work.array(f"rows_{n_bins}", (n, gh - cs + 1, gw, n_bins))
    np.add(h[:, : gh - cs + 1], h[:, 1 : gh - cs + 2], out=rows)
    for dy in range(2, cs):
        np.add(rows, h[:, dy : gh - cs + 1 + dy], out=rows)
    np.add(rows[:, :, : gw - cs + 1], rows[:, :, 1 : gw - cs + 2], out=out)
    for dx in range(2, cs):
        np.add(out, rows[:, :, dx : gw - cs + 1 + dx], out=out)


@njit(inline="always")
def _numpy_sum(x, n, squares):
    """Σ x (or Σ x²) in float32 in numpy's order for a contiguous row of n ≤ 128 (eight partial
    sums, then the rest), so that the kernel normalises exactly as ``x.sum(axis=1)`` would."""
    total = np.float32(0.0)
    if n < 8:
        for i in range(n):
            total += x[i] * x[i] if squares else x[i]
        return np.float32(0.0) + total
    if squares:
        r0, r1, r2, r3 = x[0] * x[0], x[1] * x[1], x[2] * x[2], x[3] * x[3]
        r4, r5, r6, r7 = x[4] * x[4], x[5] * x[5], x[6] * x[6], x[7] * x[7]
    else:
        r0, r1, r2, r3, r4, r5, r6, r7 = x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]
    i = 8
    while i < n - n % 8:
        if squares:
            r0 += x[i] * x[i]
            r1 += x[i + 1] * x[i + 1]
            r2 += x[i + 2] * x[i + 2]
            r3 += x[i + 3] * x[i + 3]
            r4 += x[i + 4] * x[i + 4]
            r5 += x[i + 5] * x[i + 5]
            r6 += x[i + 6] * x[i + 6]
            r7 += x[i + 7] * x[i + 7]
        else:
            r0 += x[i]
            r1 += x[i + 1]
            r2 += x[i + 2]
            r3 += x[i + 3]
            r4 += x[i + 4]
            r5 += x[i + 5]
            r6 += x[i + 6]
            r7 += x[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += x[i] * x[i] if squares else x[i]
        i += 1
    return np.float32(0.0) + total


@njit(inline="always")
def _gather_cubes_of(cells, nt, ny, nx, cs, ss, normalization, floor, parts, out, n_bins):
    size = out.shape[1] // parts
    tiny = np.float32(1e-12)
    least = max(floor, tiny)
    n = 0
    for t in range(nt):
        for y in range(ny):
            for x in range(nx):
                row = out[n]
                o = 0
                for k in range(_TIME_CELLS):
                    for i in range(_SPATIAL_CELLS):
                        for j in range(_SPATIAL_CELLS):
                            src = cells[t + k, y * ss + i * cs, x * ss + j * cs]
                            for b in range(n_bins):
                                row[o + b] = src[b]
                            o += n_bins
                for p in range(parts if normalization else 0):
                    part = row[p * size : (p + 1) * size]
                    if normalization == 1:  # RootSIFT: L1 (histograms are ≥ 0: the sum), then √
                        total = _numpy_sum(part, size, False)
                        if total < least:
                            total = least
                        for q in range(size):
                            part[q] = np.sqrt(part[q] / total)
                    else:
                        norm = np.sqrt(_numpy_sum(part, size, True))
                        if norm < tiny:
                            norm = tiny
                        for q in range(size):
                            part[q] = part[q] / norm
                n += 1


@njit(
    "void(float32[:, :, :, ::1], int64, int64, int64, int64, int64, int64, float32, int64, "
    "float32[:, ::1])",
    cache=True,
    nogil=True,
)
def _gather_cubes(cells, nt, ny, nx, cs, ss, normalization, floor, parts, out):
    """Rows of ``out`` (nt · ny · nx, 12 · B): the (time, row, column) cells of each cube,
    normalised (0 none, 1 root with L1 mass at least ``floor``, 2 l2), each of ``parts`` equal
    segments on its own. ``cells`` (nt + 2, gh′, gw′, B): spatial cell sums."""
    n_bins = cells.shape[3]
    # A constant bin count lets the compiler unroll the copies.
    if n_bins == N_ORIENTATIONS + 1:
        _gather_cubes_of(
            cells, nt, ny, nx, cs, ss, normalization, floor, parts, out, N_ORIENTATIONS + 1
        )
    elif n_bins == N_ORIENTATIONS:
        _gather_cubes_of(
            cells, nt, ny, nx, cs, ss, normalization, floor, parts, out, N_ORIENTATIONS
        )
    else:
        _gather_cubes_of(cells, nt, ny, nx, cs, ss, normalization, floor, parts, out, n_bins)
