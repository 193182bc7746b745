"""The space-time pyramid of Kantorov & Laptev (design §3.2): which Fisher-vector channels a cube
feeds.

A pyramid is a list of grids ``(nx, ny, nt)``, each cutting the clip into ``nx × ny × nt``
cells; every cell is a channel of the Fisher vector, encoded from the cubes whose centre lies in
it. The default grids 1×1×1, 2×2×1, 1×3×1, 1×1×2, 2×2×2, 1×3×2 give 24 channels, the first of
them the whole clip.

The cuts of all grids together split the clip into *atoms* (here 2 × 4 × 2 = 16): the cells of
every grid are unions of atoms, so a cube's atom says every channel it feeds. The Fisher layer
sums its statistics per atom once and adds atoms into channels (`Pyramid.membership`), and the
way back gives each atom one coefficient vector, the sum over the channels that contain it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

#: Kantorov & Laptev's grids (nx, ny, nt): 1 + 4 + 3 + 2 + 8 + 6 = 24 channels.
KL_GRIDS = ((1, 1, 1), (2, 2, 1), (1, 3, 1), (1, 1, 2), (2, 2, 2), (1, 3, 2))


@dataclass(frozen=True)
class Pyramid:
    """Space-time grids over a clip; each cell of each grid is one Fisher-vector channel.

    Parameters
    ----------
    grids : tuple of (int, int, int)
        ``(nx, ny, nt)`` of each grid: columns, rows and time slices, each ≥ 1.

    Attributes
    ----------
    cuts : tuple of three tuples of Fraction
        The inner cut positions in [0, 1] along x, y and t, over all grids.
    """

    grids: tuple[tuple[int, int, int], ...] = KL_GRIDS

    def __post_init__(self) -> None:
        grids = tuple(tuple(int(n) for n in g) for g in self.grids)
        if not grids or any(len(g) != 3 or min(g) < 1 for g in grids):
            raise ValueError(
                f"pyramid grids must be (nx, ny, nt) triples of positive ints, got {self.grids!r}"
            )
        object.__setattr__(self, "grids", grids)

    @classmethod
    def of(cls, spec: None | Sequence[Sequence[int]] | Pyramid) -> Pyramid | None:
        """A pyramid from a model parameter: None (no pyramid), grids, or a `Pyramid`."""
        if spec is None or isinstance(spec, Pyramid):
            return spec
        return cls(tuple(tuple(g) for g in spec))

    @functools.cached_property
    def cuts(self) -> tuple[tuple[Fraction, ...], ...]:
        return tuple(
            tuple(sorted({Fraction(i, g[axis]) for g in self.grids for i in range(1, g[axis])}))
            for axis in range(3)
        )

    @property
    def n_channels(self) -> int:
        """C, the number of cells over all grids."""
        return sum(nx * ny * nt for nx, ny, nt in self.grids)

    def channel_names(self) -> list[str]:
        """A name per channel: its grid, then the cell's column, row and time slice.

        E.g. ``"2x2x1 (1,0,0)"``: the top right quarter of the whole clip.
        """
        names = []
        for nx, ny, nt in self.grids:
            for t in range(nt):
                for y in range(ny):
                    for x in range(nx):
                        names.append(f"{nx}x{ny}x{nt} ({x},{y},{t})")
        return names

    def membership(self) -> np.ndarray:
        """Which atoms make up which channel.

        Returns
        -------
        ndarray of bool, shape (n_atoms, C)
            Atoms are numbered ``(t · ay + y) · ax + x`` over the atom grid (ax, ay, at).
        """
        cuts = self.cuts
        edges = [(Fraction(0), *c, Fraction(1)) for c in cuts]
        ax, ay, at = (len(e) - 1 for e in edges)
        out = np.zeros((ax * ay * at, self.n_channels), bool)
        column = 0
        for grid in self.grids:
            nx, ny, nt = grid
            # the cell of this grid that holds each atom, by the atom's lower edge
            cx = [int(edges[0][i] * nx) for i in range(ax)]
            cy = [int(edges[1][i] * ny) for i in range(ay)]
            ct = [int(edges[2][i] * nt) for i in range(at)]
            for t in range(at):
                for y in range(ay):
                    for x in range(ax):
                        cell = (ct[t] * ny + cy[y]) * nx + cx[x]
                        out[(t * ay + y) * ax + x, column + cell] = True
            column += nx * ny * nt
        return out

    def atoms(self, boxes: np.ndarray) -> np.ndarray:
        """The atom of each cube, by its centre's place in the extent of all the clip's cubes.

        Parameters
        ----------
        boxes : ndarray, shape (N, 6)
            ``t0, t1, y0, y1, x0, x1`` of each cube (`LocalDescriptors.boxes`), frames and px.

        Returns
        -------
        ndarray of intp, shape (N,)
            Atom indices as in `membership`.
        """
        boxes = np.asarray(boxes, np.float64)
        index = np.zeros(len(boxes), np.intp)
        if len(boxes) == 0:
            return index
        place = []
        for lo_col in (4, 2, 0):  # x, y, t
            lo, hi = boxes[:, lo_col].min(), boxes[:, lo_col + 1].max()
            centre = (boxes[:, lo_col] + boxes[:, lo_col + 1]) / 2
            place.append((centre - lo) / max(hi - lo, 1e-12))
        counts = []
        for axis, cuts in enumerate(self.cuts):
            bins = np.searchsorted(np.array([float(c) for c in cuts]), place[axis], side="right")
            place[axis] = bins
            counts.append(len(cuts) + 1)
        ax, ay, _ = counts
        index[:] = (place[2] * ay + place[1]) * ax + place[0]
        return index
