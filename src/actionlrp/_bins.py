"""The step every histogram's "bins" relevance rule shares (design §5.5): per time cell, the
relevance of each bin of each cell, over what filled it, gathered onto the grid cells."""

from __future__ import annotations

import numpy as np
from numba import njit

_TIME_CELLS = 3
_SPATIAL_CELLS = 2


@njit(inline="always")
def _bin_shares(
    hist, relevance, rows, first, y0, x0, cs, cf, tc, acc, even, used, h, gathered, gathered_even
):
    """A_ob / H_ob of time cell ``tc`` gathered onto the grid cells, into ``gathered`` (gh, gw, nb)
    and ``gathered_even`` (gh, gw).

    ``hist`` (gh, gw, nb): the time cell's histogram of each grid cell, so that a cell o of
    cs × cs grid cells has H_ob = Σ over them. A_ob is the relevance of bin b of o summed over the
    cubes that hold o (the cubes are ``relevance[rows]`` sorted by start time cell, those starting
    in time cell s ``first[s]:first[s + 1]``, at grid cell (``y0``, ``x0``)). An empty bin's A_ob
    goes evenly over o's cs·cs·cf voxels instead. Each grid cell then gathers from the cs × cs
    cells o that contain it (the adjoint of the sums); a voxel v of it takes Σ_b gathered_b w_vb
    + gathered_even. ``acc``, ``even``, ``used``, ``h``: scratch of the shapes of ``gathered``,
    ``gathered_even``, (gh, gw) bool and (nb,)."""
    gh, gw, nb = hist.shape
    acc[:] = 0.0
    used[:] = False
    for k in range(min(_TIME_CELLS, tc + 1)):  # the cubes whose k-th time cell is tc
        for n in range(first[tc - k], first[tc - k + 1]):
            f = k * _SPATIAL_CELLS * _SPATIAL_CELLS * nb
            row = rows[n]
            for i in range(_SPATIAL_CELLS):
                for j in range(_SPATIAL_CELLS):
                    y, x = y0[n] + i * cs, x0[n] + j * cs
                    used[y, x] = True
                    for b in range(nb):
                        acc[y, x, b] += relevance[row, f]
                        f += 1
    # Round-off guard: H_ob is at least the largest single-cell bin, at most cs² times it.
    bin_floor = 1e-12 * max(np.abs(hist).max(), 1e-300)
    even[:] = 0.0
    for y in range(gh - cs + 1):
        for x in range(gw - cs + 1):
            if not used[y, x]:
                continue
            h[:] = 0.0
            for oy in range(y, y + cs):
                for ox in range(x, x + cs):
                    for b in range(nb):
                        h[b] += hist[oy, ox, b]
            for b in range(nb):
                if abs(h[b]) > bin_floor:
                    acc[y, x, b] /= h[b]
                else:
                    even[y, x] += acc[y, x, b] / (cs * cs * cf)
                    acc[y, x, b] = 0.0
    for y in range(gh):
        for x in range(gw):
            gathered[y, x, :] = 0.0
            gathered_even[y, x] = 0.0
            for oy in range(max(0, y - cs + 1), min(y, gh - cs) + 1):
                for ox in range(max(0, x - cs + 1), min(x, gw - cs) + 1):
                    if not used[oy, ox]:
                        continue
                    gathered_even[y, x] += even[oy, ox]
                    for b in range(nb):
                        gathered[y, x, b] += acc[oy, ox, b]
