"""HOG, the fourth feature type: luma gradient histograms per frame and grid cell, their cubes,
and their relevance step."""

from __future__ import annotations

from dataclasses import replace

import av
import numpy as np
import pytest
from test_descriptors import RAW, field_of

from actionlrp.descriptors import DescriptorParams, describe, orientation_bins
from actionlrp.hog import luma_cell_histograms
from actionlrp.video import grid_size

HOG = DescriptorParams(hog=True)


def _reference_histograms(luma: np.ndarray, cell: int) -> np.ndarray:
    """np.gradient + `orientation_bins`, averaged per cell: what the kernel computes."""
    gy, gx = np.gradient(luma.astype(np.float32))
    lower, upper, w_lower, w_upper = orientation_bins(gx, gy)
    gh, gw = grid_size(*luma.shape, cell)
    ys, xs = np.indices(luma.shape)
    cells = (ys // cell * gw + xs // cell).ravel()
    out = np.zeros((gh * gw, 8))
    np.add.at(out, (cells, lower), w_lower)
    np.add.at(out, (cells, upper), w_upper)
    return (out / np.bincount(cells, minlength=gh * gw)[:, None]).reshape(gh, gw, 8)


def test_cell_histograms_are_np_gradient_binned_like_hof_and_mbh():
    luma = np.random.default_rng(1).integers(0, 256, size=(61, 83), dtype=np.uint8)
    hist = luma_cell_histograms(luma, 8)
    assert hist.shape == (8, 11, 8) and hist.dtype == np.float32
    # The orientation comes from a polynomial atan2 (1e-5 rad): the shares agree to about that.
    np.testing.assert_allclose(hist, _reference_histograms(luma, 8), atol=1e-3)


def _edge_clip(path, codec: str, vertical: bool) -> None:
    """Dark left (top) half, bright right (bottom) half, still, 20 frames of 96×64."""
    picture = np.full((64, 96, 3), 40, np.uint8)
    if vertical:
        picture[:, 48:] = 200
    else:
        picture[32:] = 200
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for _ in range(20):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        out.mux(stream.encode(None))


@pytest.mark.parametrize(("codec", "suffix"), [("libx264", ".mp4"), ("mpeg4", ".avi")])
@pytest.mark.parametrize(("vertical", "expected_bin"), [(True, 0), (False, 2)])
def test_an_edge_of_known_orientation_lands_in_its_bin(
    tmp_path, codec, suffix, vertical, expected_bin
):
    from actionlrp.motion import motion_field

    path = tmp_path / f"edge{suffix}"
    _edge_clip(path, codec, vertical)
    field = motion_field(path, hog=True)
    assert field.hog.shape == (20, 8, 12, 8)
    assert motion_field(path).hog is None
    # Brighter towards +x (+y): the gradient points at 0° (90°), bin 0 (2), in every frame.
    mass = field.hog.sum(axis=(0, 1, 2))
    assert mass.argmax() == expected_bin and mass[expected_bin] > 0.9 * mass.sum()
    cells = field.hog[:, :, 5:7] if vertical else field.hog[:, 3:5]
    edge = cells.sum(axis=(0, 1, 2))
    assert edge[expected_bin] > 0.95 * mass[expected_bin]  # on the edge's cells


def test_farneback_field_carries_the_same_histograms(square_clips):
    from actionlrp.codec import read_motion_field
    from actionlrp.flow import farneback_motion_field

    path = square_clips["mpeg4", 0].path
    mv, flow = read_motion_field(path, hog=True), farneback_motion_field(path, hog=True)
    assert flow.hog.shape == mv.hog.shape == (*mv.grid_shape, 8)
    np.testing.assert_array_equal(flow.hog, mv.hog)  # the same decoded luma


def _field_with_hog(t=25, gh=9, gw=12, seed=0):
    rng = np.random.default_rng(seed)
    field = field_of(rng.normal(scale=2.0, size=(t, gh, gw, 2)))
    hog = rng.gamma(1.0, 2.0, size=(t, gh, gw, 8)).astype(np.float32)
    hog[:, :2, :3] = 0.0  # a flat region: empty bins

    return replace(field, hog=hog)


def test_hog_on_gives_four_feature_types_and_off_three():
    field = _field_with_hog()
    assert DescriptorParams(hog=False).dims() == {"hof": 108, "mbhx": 96, "mbhy": 96}
    assert (
        HOG.dims() == DescriptorParams().dims() == {"hof": 108, "mbhx": 96, "mbhy": 96, "hog": 96}
    )
    with_hog, without = describe(field, HOG), describe(field, DescriptorParams(hog=False))
    assert list(describe(field).features) == list(with_hog.features)  # the field carries HOG
    assert list(describe(replace(field, hog=None)).features) == list(without.features)
    assert list(with_hog.features) == ["hof", "mbhx", "mbhy", "hog"]
    assert list(without.features) == ["hof", "mbhx", "mbhy"]
    for f in without.features:  # HOG changes nothing else
        np.testing.assert_array_equal(with_hog.features[f], without.features[f])
    with pytest.raises(ValueError, match="hog=True"):
        describe(field_of(np.zeros((20, 6, 6, 2))), HOG)


def test_raw_hog_cube_is_the_sum_of_its_cells_histograms():
    field = _field_with_hog(t=15, gh=4, gw=4)
    desc = describe(field, DescriptorParams(hog=True, normalization="none"))
    assert len(desc) == 1
    cells = field.hog.reshape(3, 5, 2, 2, 2, 2, 8).sum(axis=(1, 3, 5))  # time, row, column cells
    np.testing.assert_allclose(desc.features["hog"][0], cells.ravel(), rtol=1e-5)


def test_hog_floor_keeps_a_faint_cube_faint():
    field = _field_with_hog(t=15, gh=4, gw=4)
    faint = type(field)(**{**field.__dict__, "hog": field.hog * 1e-3})
    plain = describe(faint, DescriptorParams(hog=True, hog_floor=0.0)).features["hog"]
    floored = describe(faint, HOG).features["hog"]
    assert (plain**2).sum() == pytest.approx(1.0, rel=1e-5)  # RootSIFT: unit mass
    assert (floored**2).sum() < 0.01


@pytest.mark.parametrize("params", [HOG, DescriptorParams(hog=True, cube_px=(32, 48))])
@pytest.mark.parametrize("root", ["zero", "still"])
def test_hog_bin_relevance_conserves(params, root):
    from actionlrp.descriptors_lrp import spread_bin_relevance

    field = _field_with_hog(t=33, gh=13, gw=15)
    desc = describe(field, params)
    r = np.random.default_rng(2).normal(size=(len(desc), 96))
    r1 = spread_bin_relevance(field, desc, r, "hog", params, root=root)
    assert r1.shape == field.grid_shape
    assert r1.sum() == pytest.approx(r.sum(), rel=1e-9)
    assert not r1[30:].any()


def test_hog_bin_relevance_goes_to_the_voxels_in_proportion_to_their_histograms():
    """Give every bin its own raw value: each voxel then gets its histogram's mass × the number
    of cube cells that hold it."""
    from actionlrp.descriptors_lrp import spread_bin_relevance

    params = DescriptorParams(hog=True, normalization="none")
    field = _field_with_hog(t=30, gh=10, gw=12, seed=4)
    desc = describe(field, params)
    raw = desc.features["hog"].astype(np.float64)
    r1 = spread_bin_relevance(field, desc, raw, "hog", params)
    mass = field.hog.sum(axis=-1).astype(np.float64)
    covered = (r1 != 0) & (mass > 0)
    count = r1[covered] / mass[covered]
    assert covered.sum() > 0.4 * r1.size
    assert np.allclose(count, np.round(count), atol=1e-3)
    assert set(np.round(count).astype(int)) <= set(range(1, 13))
    assert RAW.dims() == DescriptorParams(hog=False).dims()


def test_the_still_root_of_hog_is_a_flat_picture():
    from actionlrp.descriptors_lrp import still_reference

    field = _field_with_hog()
    reference, index = still_reference(field, describe(field, HOG), HOG)
    assert not reference.features["hog"].any() and (index == 0).all()


def test_luma_on_its_way_to_a_slow_consumer_stays_bounded(tmp_path, monkeypatch):
    # The decoding thread copies each frame's luma and the consuming thread turns it into
    # histograms; when the consumer lags, the queue between them must not hold the clip's
    # every picture. (MPEG-4 Part 2: no luma ring for the reference match besides.)
    import time
    import tracemalloc

    import actionlrp._field_builder as field_builder
    from actionlrp import codec, synthetic

    clip = synthetic.moving_square_clip(
        tmp_path / "slow.avi", codec="mpeg4", n_frames=200, width=160, height=120
    )
    luma_bytes = 160 * 120
    monkeypatch.setattr(codec, "_LUMA_IN_FLIGHT", 2 * 16 * luma_bytes)  # two chunks of 16
    real = field_builder.luma_histograms_into

    def peak_reading(delay: float) -> int:
        def lagging(luma, cell, out):
            time.sleep(delay)
            real(luma, cell, out)

        monkeypatch.setattr(field_builder, "luma_histograms_into", lagging)
        tracemalloc.start()
        field = codec.read_motion_field(clip.path, hog=True)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert field.n_frames == 200 and np.abs(field.hog).sum() > 0
        return peak

    lag = peak_reading(0.002) - peak_reading(0.0)
    assert lag < 80 * luma_bytes, lag / luma_bytes  # about 200 frames' luma without the bound


def test_the_consumer_computes_what_the_frame_gives(tmp_path):
    from actionlrp import synthetic
    from actionlrp.hog import frame_cell_histograms, frame_luma

    clip = synthetic.moving_square_clip(tmp_path / "sq.avi", codec="mpeg4", n_frames=6)
    with av.open(str(clip.path)) as container:
        for frame in container.decode(video=0):
            luma = frame_luma(frame, frame.height, frame.width)
            assert luma.shape == (frame.height, frame.width) and luma.flags.c_contiguous
            np.testing.assert_array_equal(
                luma_cell_histograms(luma, 8), frame_cell_histograms(frame, 8, *luma.shape)
            )
            plane = frame.planes[0]
            coded = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
            np.testing.assert_array_equal(luma, coded[: frame.height, : frame.width])
