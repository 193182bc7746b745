"""Motion-vector blocks on the cell grid, and the filling of cells and frames without vectors."""

from __future__ import annotations

import av
import numpy as np
import pytest

from actionlrp import _scratch, codec, raster, synthetic
from actionlrp.raster import fill_missing
from actionlrp.synthetic import SyntheticObject

CELL = 8


def test_fill_missing_averages_nearest_valid_frames():
    flow = np.full((5, 1, 2, 2), np.nan, np.float32)
    flow[0, 0, 0] = [1.0, 0.0]
    flow[4, 0, 0] = [3.0, 2.0]
    flow[2, 0, 1] = [5.0, 5.0]
    out = fill_missing(flow)
    assert not np.isnan(out).any()
    assert np.allclose(out[1:4, 0, 0], [2.0, 1.0])
    assert np.allclose(out[:, 0, 1], [5.0, 5.0])


def _fill_at_once(flow: np.ndarray) -> np.ndarray:
    """The rule of `fill_missing`, written out for the whole clip at once (the reference)."""
    t = flow.shape[0]
    flat = flow.reshape(t, -1, 2).copy()
    valid = ~np.isnan(flat[..., 0])
    steps = np.arange(t)[:, None]
    prev_idx = np.maximum.accumulate(np.where(valid, steps, -1), axis=0)
    next_idx = np.minimum.accumulate(np.where(valid, steps, t)[::-1], axis=0)[::-1]
    ti, ci = np.nonzero(~valid)
    p, n = prev_idx[ti, ci], next_idx[ti, ci]
    has_p, has_n = p >= 0, n < t
    total = np.where(has_p[:, None], flat[np.maximum(p, 0), ci], 0.0)
    total += np.where(has_n[:, None], flat[np.minimum(n, t - 1), ci], 0.0)
    count = np.maximum(has_p.astype(np.float32) + has_n, 1.0)
    flat[ti, ci] = total / count[:, None]
    return flat.reshape(flow.shape)


@pytest.mark.parametrize("seed", range(4))
def test_gaps_filled_as_frames_arrive_equal_filling_at_once(seed):
    rng = np.random.default_rng(seed)
    flow = rng.normal(size=(60, 3, 5, 2)).astype(np.float32)
    flow[rng.random((60, 3, 5)) < 0.3] = np.nan  # intra blocks
    flow[rng.choice(60, 6, replace=False)] = np.nan  # frames without vectors
    flow[:, 0, 0] = np.nan  # a cell never covered
    flow[50:, 1, 1] = np.nan  # a gap still open at the end
    expected = _fill_at_once(flow)
    assert np.array_equal(fill_missing(flow), expected)
    # As `read_motion_field` does it: chunk by chunk, each filled when its frames arrive.
    streamed = flow.reshape(60, -1, 2).copy()
    gaps = raster._GapFiller(streamed.shape[1])
    stops = np.sort(rng.choice(np.arange(1, 60), 7, replace=False)).tolist() + [60]
    for lo, hi in zip([0, *stops[:-1]], stops, strict=True):
        gaps.add(streamed[:hi], lo)
    gaps.finish(streamed)
    assert np.array_equal(streamed.reshape(flow.shape), expected)


def _splat_reference(vectors, frame, n_frames, height, width, cell=CELL) -> np.ndarray:
    """Area-weighted sums (n, 2, 3, gh, gw) with numpy: every block cut into its cell pieces."""
    gh, gw = -(-height // cell), -(-width // cell)
    out = np.zeros((n_frames, 2, 3, gh, gw))
    dx = -vectors["motion_x"].astype(np.float32) / np.maximum(vectors["motion_scale"], 1)
    dy = -vectors["motion_y"].astype(np.float32) / np.maximum(vectors["motion_scale"], 1)
    w, h = vectors["w"].astype(int), vectors["h"].astype(int)
    x0, y0 = vectors["dst_x"] - w // 2, vectors["dst_y"] - h // 2
    x1, y1 = np.minimum(x0 + w, width), np.minimum(y0 + h, height)
    x0, y0 = np.maximum(x0, 0), np.maximum(y0, 0)
    for row in range(gh):
        oy = np.minimum(y1, (row + 1) * cell) - np.maximum(y0, row * cell)
        for col in range(gw):
            ox = np.minimum(x1, (col + 1) * cell) - np.maximum(x0, col * cell)
            area = (np.maximum(oy, 0) * np.maximum(ox, 0)).astype(np.float32)
            index = frame * 2 + (vectors["source"] > 0)
            for q, weight in enumerate((area * dx, area * dy, area)):
                out[:, :, q, row, col] = np.bincount(index, weight, 2 * n_frames).reshape(-1, 2)
    return out.astype(np.float32)


@pytest.mark.parametrize("name", ["libx264", "mpeg4"])
def test_splatting_matches_cutting_every_block_into_cell_pieces(clip_dir, name):
    suffix = ".mp4" if name == "libx264" else ".avi"
    clip = synthetic.make_clip(
        clip_dir / f"splat_{name}{suffix}",
        [SyntheticObject("rotate", size=40, degrees_per_frame=6.0)],
        width=150,  # not a multiple of the cell: blocks cut at the frame's edge
        height=106,
        n_frames=12,
        codec=name,
        b_frames=2,
        pan=(1.5, -0.5),
    )
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        frames = [codec._vector_bytes(frame) for frame in container.decode(stream)]
    rasteriser = raster._Rasteriser(106, 150, CELL, _scratch._Workspace())
    for vectors in frames:
        rasteriser.add(vectors)
    got = np.empty((len(frames), 2, 3, 14, 19), np.float32)
    rasteriser.take(got)
    vectors = np.frombuffer(b"".join(v or b"" for v in frames), raster._MV_DTYPE)
    counts = [len(v or b"") // raster._MV_DTYPE.itemsize for v in frames]
    frame = np.repeat(np.arange(len(frames)), counts)
    assert np.array_equal(got, _splat_reference(vectors, frame, len(frames), 106, 150))
    assert got[:, :, 2].sum() > 0
