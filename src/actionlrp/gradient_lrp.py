"""The relevance step of MBH's gradient layer (design §5.6): from gradient voxels to the flow
vectors they difference.

The gradient of one flow component is linear and blind to a constant flow, so its magnitude
splits exactly over the vectors it differences around a constant root, the frame's median of
the component (its camera motion): a motion boundary's relevance goes to the side that moves
against the background. `gradient_relevance` does it for a whole field;
`actionlrp.descriptors_lrp.spread_bins` runs the same step on each frame
(`_frame_gradient_relevance`) as it spreads MBH's bins.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from actionlrp.video import MotionField


def gradient_relevance(field_: MotionField, relevance: np.ndarray, feature: str) -> np.ndarray:
    """The relevance step of the gradient layer of MBH: from gradient voxels to flow vectors.

    The gradient ``g = (D_x c, D_y c)`` of one flow component ``c`` (central differences,
    one-sided at the edges, as `describe` takes it) is linear and blind to a constant flow, so
    its magnitude splits exactly over the vectors it differences around any constant root
    ``c̃`` (design §5, the z-rule of a linear layer taken from a root point):
    ``|g_v| = Σ_i (g_v · ∂g_v/∂c_i)(c_i − c̃) / |g_v|``. ``c̃`` is the frame's median of the
    component, its camera motion, so a motion boundary's relevance goes to the side that moves
    against the background rather than half to each. Voxel v's relevance goes to vector i in
    that proportion: ``R_i = (c_i − c̃) · (D_xᵀ a_x + D_yᵀ a_y)_i`` with ``a = R_v g_v / |g_v|²``.
    Where ``g_v = 0`` the relevance stays on v. Σ R_i = Σ R_v to round-off.

    Parameters
    ----------
    field_ : MotionField
        The field, (T, gh, gw, 2).
    relevance : ndarray, shape (T, gh, gw)
        Relevance of each gradient voxel of ``feature`` (``"mbhx"``: of dx, ``"mbhy"``: of dy).
    feature : str
        ``"mbhx"`` or ``"mbhy"``.

    Returns
    -------
    ndarray, shape (T, gh, gw), float64
    """
    if feature not in ("mbhx", "mbhy"):
        raise ValueError(f"feature must be 'mbhx' or 'mbhy', got {feature!r}")
    relevance = np.asarray(relevance, np.float64)
    if relevance.shape != field_.grid_shape:
        raise ValueError(f"relevance must have shape {field_.grid_shape}, got {relevance.shape}")
    t, gh, gw = field_.grid_shape
    if gh < 2 or gw < 2 or t == 0:
        return relevance.copy()
    component = np.ascontiguousarray(field_.flow[..., 0 if feature == "mbhx" else 1], np.float32)
    out = np.zeros_like(relevance)
    _gradient_relevance(component, np.ascontiguousarray(relevance), out)
    return out


@njit(cache=True, nogil=True)
def _gradient_relevance(component, relevance, out):
    """`gradient_relevance` of ``component`` (t, gh ≥ 2, gw ≥ 2), added into ``out``."""
    adjoint = np.empty(relevance.shape[1:])
    for f in range(relevance.shape[0]):
        _frame_gradient_relevance(component[f], relevance[f], adjoint, out[f])


@njit(inline="always")
def _float64_gradient(c, r, x):
    """(∂c/∂x, ∂c/∂y) at (r, x) in float64: central differences, one-sided at the edges."""
    gh, gw = c.shape
    lo, hi = max(x - 1, 0), min(x + 1, gw - 1)
    gx = (np.float64(c[r, hi]) - np.float64(c[r, lo])) * (0.5 if hi - lo == 2 else 1.0)
    lo, hi = max(r - 1, 0), min(r + 1, gh - 1)
    gy = (np.float64(c[hi, x]) - np.float64(c[lo, x])) * (0.5 if hi - lo == 2 else 1.0)
    return gx, gy


@njit(inline="always")
def _frame_gradient_relevance(c, relevance, adjoint, out):
    """One frame of `gradient_relevance`: component ``c`` (gh, gw), voxel ``relevance``
    (gh, gw); the vectors' relevance is added into ``out`` (gh, gw). A gradient counts as 0
    at or under 1e-12 × the frame's largest |g|² (round-off)."""
    gh, gw = c.shape
    root = np.median(c)
    top = 0.0
    for r in range(gh):
        for x in range(gw):
            gx, gy = _float64_gradient(c, r, x)
            top = max(top, gx * gx + gy * gy)
    floor = 1e-12 * max(top, 1e-300)
    adjoint[:] = 0.0
    for r in range(gh):
        for x in range(gw):
            gx, gy = _float64_gradient(c, r, x)
            square = gx * gx + gy * gy
            if square <= floor:
                out[r, x] += relevance[r, x]
                continue
            # a = R g / |g|², scattered by Dᵀ: the weights of g's central or edge differences
            share = relevance[r, x] / square
            lo, hi = max(x - 1, 0), min(x + 1, gw - 1)
            ax = share * gx * (0.5 if hi - lo == 2 else 1.0)
            adjoint[r, hi] += ax
            adjoint[r, lo] -= ax
            lo, hi = max(r - 1, 0), min(r + 1, gh - 1)
            ay = share * gy * (0.5 if hi - lo == 2 else 1.0)
            adjoint[hi, x] += ay
            adjoint[lo, x] -= ay
    for r in range(gh):
        for x in range(gw):
            out[r, x] += (c[r, x] - root) * adjoint[r, x]
