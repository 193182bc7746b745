"""The training set's Fisher vectors as one matrix: in memory, or on disk when they would not fit.

The SVM reads its input one block of columns at a time (the Gram matrix, the weights; design §4),
so an (n, D) matrix too large for memory — a space-time pyramid makes D 24 × as long: 7,000
clips × 1.77 M dimensions are 49 GB of float32 — can live in a file instead. `DiskMatrix` stores
it by blocks of `BLOCK_COLUMNS` columns, each block's n rows one after another, so that writing a
clip's row is one write per block and reading a block of columns one read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

#: Columns per block: the SVM's Gram matrix and weights are summed over blocks this wide.
BLOCK_COLUMNS = 4096
#: Fisher vectors of a training set above this many bytes go to a `DiskMatrix`.
IN_MEMORY_BYTES = 4 << 30


class DiskMatrix:
    """An (n, D) float32 matrix in a temporary file, written by rows and read by column blocks.

    Parameters
    ----------
    shape : (int, int)
        n rows (clips) and D columns (Fisher-vector dimensions).
    directory : path-like, optional
        Where the file goes (default: the system's temporary folder, ``TMPDIR``); it needs
        n · D · 4 bytes free. The file is deleted by `close` (or when the matrix is collected).

    Examples
    --------
    >>> m = DiskMatrix((3, 5000))
    >>> m[0:2] = np.ones((2, 5000), np.float32)
    >>> m[2] = np.zeros(5000, np.float32)
    >>> [(start, block.shape) for start, block in m.column_blocks()]
    [(0, (3, 4096)), (4096, (3, 904))]
    >>> m.close()
    """

    def __init__(self, shape: tuple[int, int], directory: str | os.PathLike | None = None):
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(np.float32)
        self.ndim = 2
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 — closed by `close`
            prefix="actionlrp-fv-", suffix=".f32", dir=directory
        )
        self.path = Path(self._file.name)
        try:
            os.posix_fallocate(self._file.fileno(), 0, max(1, self.nbytes))
        except OSError as exc:
            self.close()
            raise OSError(
                exc.errno,
                f"{self.path}: no room for the Fisher vectors ({self.nbytes / 2**30:.1f} GiB): "
                f"{os.strerror(exc.errno or 0)}",
            ) from None

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * 4

    def _blocks(self) -> Iterator[tuple[int, int, int]]:
        """``(start, width, offset in bytes)`` of each column block."""
        n, d = self.shape
        for start in range(0, d, BLOCK_COLUMNS):
            yield start, min(BLOCK_COLUMNS, d - start), n * start * 4

    def __setitem__(self, rows: int | slice, values: np.ndarray) -> None:
        """Write whole rows: ``m[i] = row`` (D,) or ``m[a:b] = rows`` (b − a, D)."""
        if isinstance(rows, slice):
            first, stop, step = rows.indices(self.shape[0])
            if step != 1:
                raise ValueError("DiskMatrix rows are written in runs of consecutive rows")
        else:
            first, stop = int(rows), int(rows) + 1
        values = np.asarray(values, np.float32).reshape(stop - first, self.shape[1])
        fd = self._file.fileno()
        for start, width, offset in self._blocks():
            part = np.ascontiguousarray(values[:, start : start + width])
            os.pwrite(fd, part.data, offset + first * width * 4)

    def column_blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, block)`` for each block of columns, block (n, width) float32 read anew."""
        n = self.shape[0]
        for start, width, offset in self._blocks():
            block = np.empty((n, width), np.float32)
            view = memoryview(block).cast("B")
            done = 0
            while done < block.nbytes:
                got = os.preadv(self._file.fileno(), [view[done:]], offset + done)
                if got == 0:
                    raise OSError(f"{self.path}: shorter than its Fisher vectors")
                done += got
            yield start, block

    def close(self) -> None:
        """Delete the file."""
        self._file.close()


def column_blocks(X: np.ndarray | DiskMatrix) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, X[:, start : start + width])`` over `BLOCK_COLUMNS`-wide blocks of columns."""
    if isinstance(X, DiskMatrix):
        yield from X.column_blocks()
        return
    for start in range(0, X.shape[1], BLOCK_COLUMNS):
        yield start, X[:, start : start + BLOCK_COLUMNS]


def feature_matrix(
    n: int, d: int, directory: str | os.PathLike | None = None
) -> np.ndarray | DiskMatrix:
    """An empty (n, d) float32 matrix for a training set's Fisher vectors: in memory up to
    `IN_MEMORY_BYTES`, else a `DiskMatrix` in ``directory``."""
    if n * d * 4 <= IN_MEMORY_BYTES:
        return np.empty((n, d), np.float32)
    return DiskMatrix((n, d), directory)
