"""Occlusion, the baseline explanation: exact against re-describing the clip region by region."""

from __future__ import annotations

import dataclasses
import doctest

import numpy as np
import pytest

from actionlrp import occlusion as occlusion_module
from actionlrp import synthetic
from actionlrp.codec import read_motion_field
from actionlrp.descriptors import DescriptorParams, LocalDescriptors, describe
from actionlrp.errors import UnknownClassError
from actionlrp.model import ActionModel
from actionlrp.occlusion import occlusion
from actionlrp.relevance import explain
from actionlrp.synthetic import SyntheticObject
from actionlrp.video import MotionField

MOTIONS = {"right": (2.0, 0.0), "down": (0.0, 2.0), "still": (0.0, 0.0)}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Fields of 9 small clips (right / down / still), two wide ones and one of noise."""
    folder = tmp_path_factory.mktemp("occlusion")
    fields, labels = [], []
    for i in range(9):
        label = list(MOTIONS)[i % 3]
        obj = SyntheticObject(
            "translate", size=40, velocity=MOTIONS[label], centre=(50.0 + 3 * i, 40.0)
        )
        clip = synthetic.make_clip(
            folder / f"{label}_{i}.mp4", [obj], width=128, height=96, n_frames=30, seed=i
        )
        fields.append(read_motion_field(clip.path))
        labels.append(label)
    wide = {}
    for width in (256, 200):  # shrunk 2× and 3× by max_width 128 and 96
        obj = SyntheticObject("translate", size=40, velocity=(2.0, 0.0), centre=(90.0, 45.0))
        clip = synthetic.make_clip(
            folder / f"wide_{width}.mp4",
            [obj],
            width=width,
            height=96,
            n_frames=25,
            seed=3,
            pan=(0.5, 0.0),
        )
        wide[width] = read_motion_field(clip.path)
    rng = np.random.default_rng(0)
    t = 27  # two frames after the last whole time cell: described by no cube
    noise = MotionField(
        flow=rng.normal(0.0, 1.5, (t, 12, 16, 2)).astype(np.float32),
        frame_types=np.array(["P"] * t),
        has_vectors=np.ones(t, bool),
        timestamps=np.arange(t) / 25.0,
        width=124,  # partial grid cells on the right and at the bottom
        height=90,
        fps=25.0,
        cell=8,
    )
    return {"fields": fields, "labels": labels, "wide": wide, "noise": noise, "folder": folder}


_MODELS: dict = {}


def fitted(clips, params: DescriptorParams, pca_dims: int | None) -> ActionModel:
    """A 3-class model with these descriptor parameters, trained on the 9 small clips."""
    key = (params, pca_dims)
    if key not in _MODELS:
        model = ActionModel(
            n_components=4,
            pca_dims=pca_dims,
            max_samples=5000,
            n_jobs=1,
            progress=False,
            descriptor_params=params,
        )
        _MODELS[key] = model.fit_descriptors(
            [describe(f, params) for f in clips["fields"]], clips["labels"]
        )
    return _MODELS[key]


def region_of(field: MotionField, region_px: int, region_frames: int) -> np.ndarray:
    """Region index of every voxel, as `benchmarks/bench_faithfulness.py` numbers them."""
    t, gh, gw = field.grid_shape
    per = region_px // field.cell
    ny, nx = -(-gh // per), -(-gw // per)
    rt, ry, rx = np.arange(t) // region_frames, np.arange(gh) // per, np.arange(gw) // per
    return (rt[:, None, None] * ny + ry[None, :, None]) * nx + rx[None, None, :]


def brute_force(model, field, top, region_px=16, region_frames=None, only=None):
    """f(x) − f(x with region o's motion removed) for every region o, the clip described and
    encoded again each time (float64 Φ, as the forward pass scores). ``only``: just that
    feature type's descriptors see the change."""
    params = model.params_
    region_frames = region_frames or params.cell_frames
    regions = region_of(field, region_px, region_frames)
    t = field.n_frames
    camera = np.median(field.flow.reshape(t, -1, 2), axis=1)[:, None, None, :]
    camera = np.broadcast_to(camera, field.flow.shape)
    clip = describe(field, params)

    def f(flow):
        desc = describe(dataclasses.replace(field, flow=flow), params)
        if only is not None:
            kept = {g: desc.features[g] if g == only else clip.features[g] for g in desc.features}
            desc = LocalDescriptors(kept, desc.boxes)
        phi = model.encoder_.encode(desc).phi
        return float(top @ model.classifier_.decision_function(phi[None])[0])

    base = f(field.flow)
    out = np.empty(int(regions.max()) + 1)
    for o in range(len(out)):
        flow = field.flow.copy()
        removed = regions == o
        flow[removed] = camera[removed]
        out[o] = base - f(flow)
    return out, regions


def per_region(voxels: np.ndarray, regions: np.ndarray) -> np.ndarray:
    return np.bincount(regions.ravel(), voxels.ravel(), int(regions.max()) + 1)


def top_of(model, e) -> np.ndarray:
    classes = [str(c) for c in model.classes_]
    top = np.zeros(len(classes))
    top[classes.index(e.class_name)] = 1.0
    if e.versus is not None:
        top[classes.index(e.versus)] = -1.0
    return top


def assert_exact(fast: np.ndarray, slow: np.ndarray, score: float) -> None:
    scale = abs(score) + np.abs(slow).max()
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12 * scale)
    # a region that changes no descriptor changes nothing, exactly, both ways
    np.testing.assert_array_equal(fast == 0.0, slow == 0.0)


CASES = {
    "plain": (DescriptorParams(hog=False), None, "fields", 0, {}),
    "pca": (DescriptorParams(hog=False), 8, "fields", 1, {}),
    "two scales": (DescriptorParams(hog=False, cube_px=(32, 48)), None, "fields", 0, {}),
    "shrunk 2x": (DescriptorParams(hog=False, max_width=128), None, "wide", 256, {}),
    "shrunk 3x, two scales, pca": (
        DescriptorParams(hog=False, cube_px=(32, 48), max_width=96),
        8,
        "wide",
        200,
        {},
    ),
    "noise everywhere": (DescriptorParams(hog=False), 8, "noise", None, {}),
    "small regions": (
        DescriptorParams(hog=False),
        None,
        "fields",
        4,
        {"region_px": 8, "region_frames": 3},
    ),
}


def _field(clips, where, which):
    return clips["noise"] if where == "noise" else clips[where][which]


@pytest.mark.parametrize("case", list(CASES))
def test_every_region_matches_brute_force(clips, case):
    params, pca_dims, where, which, regions_kw = CASES[case]
    model = fitted(clips, params, pca_dims)
    field = _field(clips, where, which)
    e = occlusion(model, field, **regions_kw)
    slow, regions = brute_force(model, field, top_of(model, e), **regions_kw)
    fast = per_region(e.relevance_voxels, regions)
    assert (slow != 0).sum() >= 10  # the case does move the score
    assert_exact(fast, slow, e.score)
    # each region's relevance is spread evenly over its voxels
    counts = np.bincount(regions.ravel())
    np.testing.assert_allclose(e.relevance_voxels, (fast / counts)[regions], rtol=1e-12, atol=0)


def test_noise_regions_after_the_last_time_cell_count_for_nothing(clips):
    field = clips["noise"]
    e = occlusion(fitted(clips, DescriptorParams(hog=False), 8), field)
    assert field.n_frames % 5 == 2
    assert np.all(e.relevance_voxels[-2:] == 0.0)
    assert np.all(e.relevance_voxels[:-2].any(axis=(1, 2)))


def test_versus_is_exact_and_the_difference_of_the_two_classes(clips):
    model = fitted(clips, DescriptorParams(hog=False), None)
    field = clips["fields"][0]
    e = occlusion(model, field, class_name="right", versus="down")
    assert (e.class_name, e.versus) == ("right", "down")
    assert e.score == pytest.approx(e.scores["right"] - e.scores["down"], abs=1e-12)
    slow, regions = brute_force(model, field, top_of(model, e))
    assert_exact(per_region(e.relevance_voxels, regions), slow, e.score)
    right = occlusion(model, field, class_name="right")
    down = occlusion(model, field, class_name="down")
    np.testing.assert_allclose(
        e.relevance_voxels,
        right.relevance_voxels - down.relevance_voxels,
        rtol=0,
        atol=1e-12 * np.abs(e.relevance_voxels).max(),
    )


def test_removing_motion_from_one_feature_type_only(clips):
    model = fitted(clips, DescriptorParams(hog=False), 8)
    field = clips["fields"][1]
    e = occlusion(model, field)
    assert set(e.relevance_voxels_by_feature) == {"hof", "mbhx", "mbhy"}
    for f in ("hof", "mbhx"):
        slow, regions = brute_force(model, field, top_of(model, e), only=f)
        assert_exact(per_region(e.relevance_voxels_by_feature[f], regions), slow, e.score)
        assert e.feature_relevance[f] == pytest.approx(slow.sum(), rel=1e-9, abs=1e-12)


def test_a_still_region_changes_nothing(clips):
    model = fitted(clips, DescriptorParams(hog=False), None)
    field = clips["fields"][2]  # a still square on a still background: motion-vector noise only
    e = occlusion(model, field)
    regions = region_of(field, 16, 5)
    camera = np.median(field.flow.reshape(field.n_frames, -1, 2), axis=1)[:, None, None, :]
    still = np.ones(int(regions.max()) + 1, bool)
    np.logical_and.at(still, regions.ravel(), (field.flow == camera).all(axis=-1).ravel())
    assert still.sum() > 0.5 * still.size
    fast = per_region(e.relevance_voxels, regions)
    assert np.all(fast[still] == 0.0)
    for r in e.relevance_voxels_by_feature.values():
        assert np.all(per_region(r, regions)[still] == 0.0)


def test_the_explanation_adds_up(clips):
    model = fitted(clips, DescriptorParams(hog=False), None)
    field = clips["fields"][0]
    desc = describe(field, model.params_)
    e = occlusion(model, field, desc, video="clip.mp4")
    lrp = explain(model, field, desc)
    assert e.method == "occlusion" and lrp.method == "lrp"
    assert (e.class_name, e.versus) == (lrp.class_name, lrp.versus)
    assert e.score == pytest.approx(lrp.score, abs=1e-12)
    assert e.scores == pytest.approx(lrp.scores, abs=1e-12)
    assert e.relevance_voxels.shape == field.grid_shape
    assert e.frame_relevance == pytest.approx(e.relevance_voxels.sum(axis=(1, 2)))
    assert e.relevance_total + e.absorbed == pytest.approx(e.score, abs=1e-12)
    assert 0.0 <= e.absorbed_mass <= 1.0
    assert e.relevance_fv.size == 0 and e.relevance_descriptors == {}
    assert set(e.feature_relevance) == {"hof", "mbhx", "mbhy"}
    assert e.rule.summary()  # the report still shows a rule
    assert str(e.video) == "clip.mp4" and e.field is field


def test_bad_arguments_are_refused(clips):
    model = fitted(clips, DescriptorParams(hog=False), None)
    field = clips["fields"][0]
    with pytest.raises(ValueError, match="multiple of the field's cell"):
        occlusion(model, field, region_px=12)
    with pytest.raises(ValueError, match="region_frames"):
        occlusion(model, field, region_frames=0)
    with pytest.raises(UnknownClassError, match="not one of the model's"):
        occlusion(model, field, class_name="swim")
    with pytest.raises(UnknownClassError, match="contrasted with itself"):
        occlusion(model, field, class_name="down", versus="down")
    desc = describe(field, model.params_)
    order = np.arange(len(desc))[::-1]
    shuffled = LocalDescriptors({k: v[order] for k, v in desc.features.items()}, desc.boxes[order])
    with pytest.raises(ValueError, match="in its order"):
        occlusion(model, field, shuffled)


def test_examples_run_as_written(clips):
    globs = {"model": fitted(clips, DescriptorParams(hog=False), None), "field": clips["fields"][0]}
    result = doctest.testmod(occlusion_module, extraglobs=globs)
    assert result.attempted > 0 and result.failed == 0


def test_the_command_line_takes_a_method():
    from actionlrp.cli import build_parser

    argv = ["explain", "v.mp4", "--model", "m", "--out", "o"]
    assert build_parser().parse_args(argv).method == "lrp"
    assert build_parser().parse_args([*argv, "--method", "occlusion"]).method == "occlusion"
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--method", "saliency"])


def test_explain_video_writes_an_occlusion_report(clips, tmp_path):
    from actionlrp.report import explain_video

    model = fitted(clips, DescriptorParams(hog=False), None)
    video = clips["folder"] / "right_0.mp4"
    e, report = explain_video(video, model, tmp_path / "r", method="occlusion")
    assert e.method == "occlusion" and report.is_file()
    assert (tmp_path / "r" / "summary.json").is_file()
    with pytest.raises(ValueError, match="method"):
        explain_video(video, model, tmp_path / "s", method="saliency")
