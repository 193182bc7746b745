"""The relevance step of the PCA layer (design §5.4): from the PCA outputs to the histogram bins.

x′ = W(x − o) is linear, decomposed around its root o (the PCA mean, or the still root's x⁰).
By the ε-rule, input j of descriptor l receives (x_lj − o_j) Σ_i W_ij R_li / (x′_li + ε′ sign
x′_li): `_abs_sums` adds up the |x′| whose mean over the clip ε′ is measured in, and
`_times_deviation` takes the product with x − o. By the α1β0 rule (`_alpha_beta`), output i
hands R_li to the inputs whose contribution has its sign, exactly conservative. The PCA layer
runs inside the Fisher layer's step, block by block of descriptors
(`actionlrp.fisher_lrp._input_block`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from actionlrp._scratch import _Workspace


def _alpha_beta(
    relevance: np.ndarray,
    x: np.ndarray,
    origins: np.ndarray,
    rows: np.ndarray,
    projected: np.ndarray,
    components: tuple[np.ndarray, np.ndarray],
    work: _Workspace,
    out: np.ndarray,
) -> None:
    """The PCA layer by the α1β0 rule about each output's sign, into ``out`` (n, d_in).

    x′_li = Σ_j z_lij with z_lij = W_ij δ_lj, δ = x − origin (``projected``: x′, (n, d); the
    origin of descriptor l is ``origins[rows[l]]``). Output i hands R_li (``relevance``) to the
    inputs whose z has the sign σ_li of x′_li, in proportion to it: exactly conservative, no ε.
    As [z]_σ = (z + σ|z|)/2 and |z_lij| = |W_ij||δ_lj|, the sums are matrix products:
    S_σ = (x′ + σ |δ||W|ᵀ)/2 and R_lj = ½ δ_lj (q W)_lj + ½ |δ_lj| ((σ q) |W|)_lj with
    q = R / S_σ. ``components``: W and |W|, (d, d_in) each.
    """
    weights, magnitudes = components
    n, d = relevance.shape
    d_in = x.shape[1]
    deviation = work.array("ab δ", (n, d_in), np.float64)
    size = work.array("ab |δ|", (n, d_in), np.float64)
    moved = work.array("ab moved", (n,), np.intp)
    m = _deviations(x, origins, rows, deviation, size, moved)  # rows at their origin pass nothing
    out[...] = 0.0
    if m == 0:
        return
    deviation, size, moved = deviation[:m], size[:m], moved[:m]
    relevance, projected = relevance[moved], projected[moved]
    spread = np.matmul(size, magnitudes.T, out=work.array("ab spread", (m, d), np.float64))
    share = work.array("ab q", (m, d), np.float64)
    signed = work.array("ab σq", (m, d), np.float64)
    _shares(relevance, projected, spread, share, signed)
    front = np.matmul(share, weights, out=work.array("ab front", (m, d_in), np.float64))
    back = np.matmul(signed, magnitudes, out=work.array("ab back", (m, d_in), np.float64))
    _combine_halves(out, moved, front, deviation, size, back)


@njit(cache=True, nogil=True)
def _deviations(x, origins, rows, deviation, size, moved):
    """δ = x − origins[rows] (x float32) and |δ| of the rows where δ ≠ 0, packed into the first
    m rows of ``deviation`` and ``size`` (n, d_in) float64, their indices in ``moved``; m."""
    n, d = deviation.shape
    m = 0
    for row in range(n):
        origin = origins[rows[row]]
        any_ = False
        for j in range(d):
            value = np.float64(x[row, j]) - origin[j]
            deviation[m, j] = value
            size[m, j] = abs(value)
            any_ = any_ or value != 0.0
        if any_:
            moved[m] = row
            m += 1
    return m


@njit(cache=True, nogil=True)
def _shares(relevance, projected, spread, share, signed):
    """q = 2R / (x′ + σ Σ|z|) (0 where that is 0) and σq, σ = sign x′ (+1 at 0)."""
    n, d = relevance.shape
    for row in range(n):
        for i in range(d):
            sign = 1.0 if projected[row, i] >= 0 else -1.0
            chosen = projected[row, i] + sign * spread[row, i]
            q = 2.0 * relevance[row, i] / chosen if chosen != 0 else 0.0
            share[row, i] = q
            signed[row, i] = sign * q


@njit(cache=True, nogil=True)
def _combine_halves(out, moved, front, deviation, size, back):
    """``out[moved[k]]`` = ½ (δ ∘ front + |δ| ∘ back)[k] for the m packed rows."""
    m, d = front.shape
    for k in range(m):
        row = moved[k]
        for j in range(d):
            out[row, j] = 0.5 * (deviation[k, j] * front[k, j] + size[k, j] * back[k, j])


@njit(cache=True, nogil=True)
def _abs_sums(stacked, shift, index, out):
    """``out``_i += Σ_l |(x − c)_li + shift[index_l, i]| over a block (`_dimension_terms`)."""
    for row in range(stacked.shape[0]):
        for i in range(shift.shape[1]):
            out[i] += abs(stacked[row, i] + shift[index[row], i])


@njit(cache=True, nogil=True)
def _times_deviation(block, x, origins, index):
    """``block`` (n, d_in) *= x − origins[index], x float32 (n, d_in)."""
    n, d = block.shape
    for row in range(n):
        origin = origins[index[row]]
        for j in range(d):
            block[row, j] *= np.float64(x[row, j]) - origin[j]
