"""The whole pipeline as one estimator, and its model file (npz + JSON, never pickle)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from actionlrp import synthetic
from actionlrp.descriptors import DescriptorParams
from actionlrp.errors import ModelFileError
from actionlrp.model import ActionModel, evaluate_clips
from actionlrp.synthetic import SyntheticObject

SMALL = {"n_components": 4, "max_samples": 5000, "n_jobs": 1, "progress": False}


@pytest.fixture(scope="module")
def two_class_clips(tmp_path_factory):
    """Horizontal vs vertical motion, 4 clips each, both codecs."""
    folder = tmp_path_factory.mktemp("twoclass")
    clips, labels = [], []
    for i in range(8):
        label = "horizontal" if i % 2 == 0 else "vertical"
        v = 1.5 + 0.25 * (i // 2)
        velocity = (v, 0.0) if label == "horizontal" else (0.0, v)
        codec, suffix = ("libx264", ".mp4") if i % 4 < 2 else ("mpeg4", ".avi")
        obj = SyntheticObject("translate", size=40, velocity=velocity, centre=(60.0, 50.0))
        clip = synthetic.make_clip(
            folder / f"{label}_{i}{suffix}",
            [obj],
            width=128,
            height=96,
            n_frames=30,
            codec=codec,
            seed=i,
        )
        clips.append(clip.path)
        labels.append(label)
    return clips, labels


@pytest.fixture(scope="module")
def fitted(two_class_clips, tmp_path_factory):
    clips, labels = two_class_clips
    cache = tmp_path_factory.mktemp("cache")
    return ActionModel(cache_dir=cache, **SMALL).fit(clips, labels)


def test_model_separates_horizontal_from_vertical_motion(fitted, two_class_clips):
    clips, labels = two_class_clips
    assert list(fitted.predict(clips)) == labels
    scores = fitted.decision_function(clips)
    assert scores.shape == (8, 2)
    assert np.allclose(scores[:, 0], -scores[:, 1])


def test_save_load_round_trip_gives_identical_scores(fitted, two_class_clips, tmp_path):
    path = fitted.save(tmp_path / "model.npz")
    loaded = ActionModel.load(path)
    clips, _ = two_class_clips
    loaded.cache_dir, loaded.n_jobs, loaded.progress = fitted.cache_dir, 1, False
    assert np.array_equal(loaded.decision_function(clips), fitted.decision_function(clips))
    assert list(loaded.classes_) == list(fitted.classes_)


def test_model_file_holds_no_pickle_and_records_versions(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as data:
        for name in data.files:
            assert data[name].dtype != object
        meta = json.loads(bytes(data["__meta__"]).decode())
    assert meta["classes"] == ["horizontal", "vertical"]
    assert {"actionlrp", "numpy", "scikit-learn", "av"} <= set(meta["versions"])
    assert len(meta["checksum"]) == 64
    assert meta["params"]["n_components"] == 4


def test_truncated_model_file_is_refused(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="model.npz: unreadable model file"):
        ActionModel.load(path)


def test_tampered_model_file_is_refused(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    name = next(n for n in arrays if n.startswith("classifier/") and arrays[n].dtype.kind == "f")
    arrays[name] = arrays[name] + 1.0
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        ActionModel.load(path)


def test_wrong_version_model_file_is_refused(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(bytes(arrays["__meta__"]).decode())
    meta["format_version"] = 99
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="format version 99 is not supported"):
        ActionModel.load(path)


def test_pickled_or_foreign_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.arange(3))
    with pytest.raises(ModelFileError, match="not an actionlrp model"):
        ActionModel.load(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __meta__=np.array([{"format": "actionlrp-model"}], dtype=object))
    with pytest.raises(ModelFileError):
        ActionModel.load(pickled)
    with zipfile.ZipFile(tmp_path / "text.npz", "w") as z:
        z.writestr("x.txt", "hello")
    with pytest.raises(ModelFileError):
        ActionModel.load(tmp_path / "text.npz")
    with pytest.raises(ModelFileError, match="no such model file"):
        ActionModel.load(tmp_path / "missing.npz")


def test_save_leaves_no_partial_file_on_failure(fitted, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        fitted.save(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


def test_training_is_deterministic(two_class_clips, fitted, tmp_path):
    clips, labels = two_class_clips
    again = ActionModel(cache_dir=fitted.cache_dir, **SMALL).fit(clips, labels)
    assert np.array_equal(again.decision_function(clips), fitted.decision_function(clips))


def test_evaluate_reports_accuracy_ap_and_confusion(fitted, two_class_clips):
    from actionlrp.datasets import Clip

    clips, labels = two_class_clips
    report = evaluate_clips(fitted, [Clip(p, lab) for p, lab in zip(clips, labels, strict=True)])
    assert report["accuracy"] == 1.0 and report["mean_ap"] == 1.0
    assert report["confusion_matrix"] == [[4, 0], [0, 4]]
    assert report["n_failed"] == 0


def test_defaults_are_k256_with_pca_to_about_half_the_descriptor_dims():
    model = ActionModel()
    assert model.n_components == 256  # design §3, the paper's K
    assert model.pca_dims == 48  # ≈ half of HOF's 108 and MBH's 96 dims
    assert model.max_samples == 50_000
    assert model.C is None  # cross-validated on the training set


def test_model_saved_before_the_mbh_floor_keeps_plain_rootsift(fitted, tmp_path):
    path = fitted.save(tmp_path / "model.npz")
    assert ActionModel.load(path).params_.mbh_floor == DescriptorParams().mbh_floor > 0
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(bytes(arrays["__meta__"]).decode())
    del meta["params"]["descriptor_params"]["mbh_floor"]
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    assert ActionModel.load(path).params_.mbh_floor == 0.0


def test_model_saved_before_hog_loads_without_it(fitted, two_class_clips, tmp_path):
    clips, labels = two_class_clips
    assert fitted.params_.hog  # the default
    motion = DescriptorParams(hog=False)
    fitted = ActionModel(descriptor_params=motion, cache_dir=fitted.cache_dir, **SMALL)
    fitted.fit(clips, labels)
    path = fitted.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(bytes(arrays["__meta__"]).decode())
    del meta["params"]["descriptor_params"]["hog"], meta["params"]["descriptor_params"]["hog_floor"]
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    loaded = ActionModel.load(path)
    assert loaded.params_ == fitted.params_ and not loaded.params_.hog
    loaded.cache_dir, loaded.n_jobs, loaded.progress = fitted.cache_dir, 1, False
    assert np.array_equal(loaded.decision_function(clips), fitted.decision_function(clips))


def test_descriptors_without_hog_get_a_plain_error_from_a_default_model(fitted, two_class_clips):
    from actionlrp.descriptors import describe
    from actionlrp.motion import motion_field

    clips, labels = two_class_clips
    motion = [describe(motion_field(c)) for c in clips]  # a field read without hog=True
    assert list(motion[0].features) == ["hof", "mbhx", "mbhy"]
    with pytest.raises(ValueError, match=r"no \['hog'\].*hog=True.*DescriptorParams\(hog=False\)"):
        ActionModel(**SMALL).fit_descriptors(motion, labels)
    kept = ActionModel(descriptor_params=DescriptorParams(hog=False), **SMALL)
    scores = kept.fit_descriptors(motion, labels).decision_function_descriptors(motion)
    assert scores.shape[0] == len(labels)


def test_a_model_with_hog_saves_loads_and_explains_with_four_feature_types(
    two_class_clips, tmp_path
):
    clips, labels = two_class_clips
    params = DescriptorParams(hog=True)
    model = ActionModel(descriptor_params=params, cache_dir=tmp_path / "cache", **SMALL)
    model.fit(clips, labels)
    assert model.encoder_.feature_types == ("hof", "mbhx", "mbhy", "hog")
    assert list(model.predict(clips)) == labels
    loaded = ActionModel.load(model.save(tmp_path / "model.npz"))
    assert loaded.params_ == params
    loaded.cache_dir, loaded.n_jobs, loaded.progress = model.cache_dir, 1, False
    assert np.array_equal(loaded.decision_function(clips), model.decision_function(clips))
    e = loaded.explain(clips[0])
    assert list(e.feature_relevance) == ["hof", "mbhx", "mbhy", "hog"]
    assert e.relevance_voxels.sum() == pytest.approx(e.score - e.absorbed, rel=1e-9)


def test_training_on_clips_that_cannot_be_read_names_the_reason(tmp_path):
    from actionlrp.errors import DatasetError

    paths = []
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"not a video")
        paths.append(tmp_path / name)
    model = ActionModel(n_components=2, n_jobs=1, progress=False, cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetError, match=r"2 of 2 training clips could not be read.*a\.mp4"):
        model.fit(paths, ["left", "right"])


def test_explain_names_a_clip_too_short_to_explain(fitted, tmp_path):
    from actionlrp.errors import EmptyClipError

    obj = SyntheticObject("translate", size=24, velocity=(2.0, 0.0), centre=(40.0, 30.0))
    clip = synthetic.make_clip(tmp_path / "short.mp4", [obj], width=96, height=64, n_frames=8)
    with pytest.raises(EmptyClipError, match=r"short\.mp4: clip has no local descriptors"):
        fitted.explain(clip.path)
