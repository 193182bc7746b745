"""The built-in action dataset: layout, ground truth beside each clip, determinism, and that the
actions are where and when the ground truth says, and look different to the descriptors."""

from __future__ import annotations

import json
from dataclasses import replace

import av
import numpy as np
import pytest

from actionlrp.builtin import ACTION_CLASSES, load_ground_truth, make_action_clip, make_dataset
from actionlrp.codec import read_motion_field
from actionlrp.descriptors import DescriptorParams, describe
from actionlrp.errors import DatasetError

SMALL = {"classes": 6, "clips_per_class": 2, "n_frames": 45, "seed": 0}
JSON_KEYS = {
    "generator",
    "version",
    "clip",
    "action",
    "interval",
    "n_frames",
    "fps",
    "width",
    "height",
    "codec",
    "b_frames",
    "pan",
    "seed",
    "box_format",
    "actor_boxes",
    "distractor_boxes",
}


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """6 classes × 2 clips of 45 frames: clip 0 (H.264) in train, clip 1 (MPEG-4) in test."""
    return make_dataset(tmp_path_factory.mktemp("builtin") / "ds", **SMALL)


@pytest.fixture(scope="session")
def regenerated(dataset, tmp_path_factory):
    """Every clip made again from its JSON alone, with its dense ground-truth flow in memory."""
    out = tmp_path_factory.mktemp("regenerated")
    clips = {}
    for path in dataset.train + dataset.test:
        truth = load_ground_truth(path)
        clips[path] = make_action_clip(
            out / path.name,
            truth.action,
            seed=truth.seed,
            width=truth.width,
            height=truth.height,
            n_frames=truth.n_frames,
            fps=truth.fps,
            codec=truth.codec,
            b_frames=truth.b_frames,
        )
    return clips


def own_motion(clip) -> np.ndarray:
    """(T, H, W) magnitude of the ground-truth flow minus the camera pan, in px per frame."""
    return np.linalg.norm(clip.flow - np.asarray(clip.pan, np.float32), axis=-1)


def box_mask(box, height, width) -> np.ndarray:
    y0, y1, x0, x1 = box
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def distractor_mask(clip, t) -> np.ndarray:
    mask = np.zeros((clip.height, clip.width), dtype=bool)
    for box in clip.distractor_boxes[t]:
        mask |= box_mask(box, clip.height, clip.width)
    return mask


# --------------------------------------------------------------------------------------------
# Layout and ground-truth files


def test_folder_layout_is_split_then_class_with_a_json_beside_each_clip(dataset):
    root = dataset.root
    assert dataset.classes == ACTION_CLASSES
    assert len(dataset.train) == len(dataset.test) == 6
    for split, clips in (("train", dataset.train), ("test", dataset.test)):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(ACTION_CLASSES)
        for clip in clips:
            action = clip.parent.name
            assert clip.parent.parent == root / split
            assert clip.stem in (f"{action}_000", f"{action}_001")
            assert clip.is_file() and clip.with_suffix(".json").is_file()
            assert sorted(p.name for p in clip.parent.iterdir()) == sorted(
                [clip.name, clip.with_suffix(".json").name]
            )
    assert dataset.train_labels == ACTION_CLASSES == dataset.test_labels
    manifest = json.loads((root / "dataset.json").read_text())
    assert manifest["complete"] is True
    assert [root / p for p in manifest["train"]] == list(dataset.train)
    assert [root / p for p in manifest["test"]] == list(dataset.test)


def test_ground_truth_json_has_the_documented_keys_and_no_pickle(dataset):
    for clip in dataset.train + dataset.test:
        data = json.loads(clip.with_suffix(".json").read_text())  # plain JSON, nothing else
        assert set(data) == JSON_KEYS
        assert data["clip"] == clip.name and data["action"] == clip.parent.name
        assert len(data["actor_boxes"]) == SMALL["n_frames"]
        assert all(len(box) == 4 for box in data["actor_boxes"])


def test_load_ground_truth_gives_t_boxes_inside_the_frame_and_a_valid_interval(dataset):
    n_frames = SMALL["n_frames"]
    for clip in dataset.train + dataset.test:
        truth = load_ground_truth(clip)
        assert truth.path == clip and truth.action == clip.parent.name
        assert (truth.width, truth.height, truth.fps) == (160, 120, 25.0)
        assert truth.actor_boxes.shape == (n_frames, 4) and truth.actor_boxes.dtype == np.int32
        y0, y1, x0, x1 = truth.actor_boxes.T
        assert np.all((0 <= y0) & (y0 < y1) & (y1 <= 120) & (0 <= x0) & (x0 < x1) & (x1 <= 160))
        start, stop = truth.interval
        assert 2 <= start < stop <= n_frames - 2
        assert 0.5 * n_frames - 1 <= stop - start <= 0.75 * n_frames + 1
        assert truth.distractor_boxes.shape[0] == n_frames
        assert 1 <= truth.distractor_boxes.shape[1] <= 2
        assert np.array_equal(truth.in_interval(), np.isin(np.arange(n_frames), range(start, stop)))
        assert truth.actor_mask(8).shape == (n_frames, 15, 20)
        y0, y1, x0, x1 = truth.actor_boxes[start]
        grown = truth.actor_mask(1, margin=4)[start]
        assert grown[max(y0 - 4, 0) : y1 + 4, max(x0 - 4, 0) : x1 + 4].all()
        assert grown.sum() == (min(y1 + 4, 120) - max(y0 - 4, 0)) * (
            min(x1 + 4, 160) - max(x0 - 4, 0)
        )
        again = load_ground_truth(clip.with_suffix(".json"))
        assert np.array_equal(again.actor_boxes, truth.actor_boxes)


def test_both_codecs_are_present_with_their_containers(dataset):
    decoders = set()
    for clip in dataset.train + dataset.test:
        with av.open(str(clip)) as container:
            name = container.streams.video[0].codec_context.name
        decoders.add(name)
        assert (clip.suffix, load_ground_truth(clip).codec) in {
            (".mp4", "libx264"),
            (".avi", "mpeg4"),
        }
        assert name == {".mp4": "h264", ".avi": "mpeg4"}[clip.suffix]
    assert decoders == {"h264", "mpeg4"}


def test_same_seed_gives_identical_files_and_another_seed_does_not(dataset, tmp_path):
    again = make_dataset(tmp_path / "again", **SMALL)
    other = make_dataset(tmp_path / "other", **{**SMALL, "seed": 1})
    for a, b, c in zip(
        dataset.train + dataset.test,
        again.train + again.test,
        other.train + other.test,
        strict=True,
    ):
        assert a.read_bytes() == b.read_bytes()
        assert a.with_suffix(".json").read_bytes() == b.with_suffix(".json").read_bytes()
        assert a.read_bytes() != c.read_bytes()


def test_the_seed_in_the_json_makes_the_same_clip_again(dataset, regenerated):
    for path, clip in regenerated.items():
        assert clip.path.read_bytes() == path.read_bytes()
        assert np.array_equal(clip.actor_boxes, load_ground_truth(path).actor_boxes)


# --------------------------------------------------------------------------------------------
# Where and when the action is


def test_actor_is_still_outside_the_interval_and_moves_inside(regenerated):
    for clip in regenerated.values():
        start, stop = clip.interval
        speed = own_motion(clip)
        moving = []
        for t in range(clip.n_frames):
            on_actor = box_mask(clip.actor_boxes[t], clip.height, clip.width)
            on_actor &= ~distractor_mask(clip, t)
            if start <= t < stop:
                moving.append(speed[t][on_actor].max())
            else:
                assert speed[t][on_actor].max() < 1e-3, (clip.action, t, clip.interval)
        moving = np.array(moving)
        assert np.mean(moving > 0.05) >= 0.7, (clip.action, moving.round(2))  # turnarounds: 0
        assert moving.mean() > 0.5, (clip.action, moving.round(2))


def test_actor_box_holds_the_motion_of_the_scene_besides_distractors_and_pan(regenerated):
    for clip in regenerated.values():
        start, stop = clip.interval
        energy = own_motion(clip) ** 2
        inside = total = 0.0
        for t in range(start, stop):
            counted = ~distractor_mask(clip, t)
            on_actor = box_mask(clip.actor_boxes[t], clip.height, clip.width) & counted
            inside += energy[t][on_actor].sum()
            total += energy[t][counted].sum()
        assert total > 0.0
        assert inside / total > 0.99, clip.action


def test_wave_box_is_the_arm_and_the_body_stays_still(regenerated):
    waves = [c for c in regenerated.values() if c.action == "wave"]
    assert waves
    for clip in waves:
        speed = own_motion(clip)
        body = clip.boxes[:, -2]  # objects: distractors, body, arm
        for t in range(clip.n_frames):
            arm = box_mask(clip.actor_boxes[t], clip.height, clip.width)
            body_only = box_mask(body[t], clip.height, clip.width) & ~arm
            assert speed[t][body_only & ~distractor_mask(clip, t)].max() < 1e-3
        arm_area = np.prod(clip.actor_boxes[0, [1, 3]] - clip.actor_boxes[0, [0, 2]])
        body_area = np.prod(body[0, [1, 3]] - body[0, [0, 2]])
        assert arm_area < 0.5 * body_area


# --------------------------------------------------------------------------------------------
# The actions look different to the descriptors (from the decoded motion vectors)


def hof_on_actor(path, without_pan: bool = False) -> np.ndarray:
    """HOF (9 bins) summed over the cubes that overlap the actor during the action, from the
    decoded motion vectors (less the known camera pan if ``without_pan``)."""
    truth = load_ground_truth(path)
    field = read_motion_field(path)
    if without_pan:
        field = replace(field, flow=field.flow - np.asarray(truth.pan, np.float32))
    desc = describe(field, DescriptorParams(hog=False, normalization="none"))
    start, stop = truth.interval
    total = np.zeros(9)
    for box, hof in zip(desc.boxes, desc.features["hof"], strict=True):
        t0, t1, y0, y1, x0, x1 = box
        if min(t1, stop) - max(t0, start) < 10:
            continue
        ay0, ay1, ax0, ax1 = truth.actor_boxes[(t0 + t1) // 2]
        overlap = max(0, min(y1, ay1) - max(y0, ay0)) * max(0, min(x1, ax1) - max(x0, ax0))
        if overlap >= 0.25 * min((y1 - y0) * (x1 - x0), (ay1 - ay0) * (ax1 - ax0)):
            total += hof.reshape(-1, 9).sum(axis=0)
    assert total.sum() > 0, path
    return total


@pytest.mark.parametrize("action,axis", [("pushups", "y"), ("jump", "y"), ("walk", "x")])
def test_actor_own_hof_peaks_in_the_bins_of_its_motion_axis(dataset, action, axis):
    # Bins of 45° from +x towards +y (down): 0 right, 2 down, 4 left, 6 up; 8 is no motion.
    for path in dataset.train + dataset.test:
        if path.parent.name != action:
            continue
        hof = hof_on_actor(path, without_pan=True)
        horizontal, vertical = hof[0] + hof[4], hof[2] + hof[6]
        if axis == "y":
            assert vertical > 2.0 * horizontal, (path.name, hof.round(1))
        else:
            assert horizontal > 2.0 * vertical, (path.name, hof.round(1))


def test_mean_actor_hof_of_pushups_and_walk_differ_in_the_expected_bins(dataset):
    mean = {}
    for action in ("pushups", "walk"):
        hofs = [hof_on_actor(p) for p in dataset.train + dataset.test if p.parent.name == action]
        hof = np.mean([h / h[:8].sum() for h in hofs], axis=0)  # share of each motion bin
        mean[action] = hof
    assert mean["pushups"][[2, 6]].sum() - mean["walk"][[2, 6]].sum() > 0.4
    assert mean["walk"][[0, 4]].sum() - mean["pushups"][[0, 4]].sum() > 0.4


# --------------------------------------------------------------------------------------------
# Arguments and errors


def test_fewer_classes_take_the_first_ones_and_too_many_raise(tmp_path):
    small = make_dataset(tmp_path / "two", classes=2, clips_per_class=1, n_frames=16)
    assert small.classes == ACTION_CLASSES[:2]
    assert sorted(p.name for p in (tmp_path / "two" / "train").iterdir()) == sorted(
        ACTION_CLASSES[:2]
    )
    assert small.test == ()  # one clip per class stays in training
    with pytest.raises(ValueError, match="classes"):
        make_dataset(tmp_path / "seven", classes=len(ACTION_CLASSES) + 1)
    with pytest.raises(ValueError, match="classes"):
        make_dataset(tmp_path / "none", classes=0)
    assert not (tmp_path / "seven").exists()


def test_a_second_run_replaces_the_previous_dataset_and_keeps_foreign_files(tmp_path):
    out = tmp_path / "ds"
    make_dataset(out, classes=2, clips_per_class=3, n_frames=16)
    second = make_dataset(out, classes=1, clips_per_class=1, n_frames=16)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "dataset.json",
        "train/pushups/pushups_000.json",
        "train/pushups/pushups_000.mp4",
    ]
    assert second.train == (out / "train/pushups/pushups_000.mp4",)
    foreign = out / "train" / "pushups" / "notes.txt"
    foreign.write_text("mine")
    with pytest.raises(DatasetError, match="notes.txt"):
        make_dataset(out, classes=1, clips_per_class=1, n_frames=16)
    assert foreign.read_text() == "mine" and second.train[0].is_file()


def test_load_ground_truth_of_a_clip_without_json_raises_dataset_error(tmp_path):
    clip = tmp_path / "walk_000.mp4"
    clip.write_bytes(b"")
    with pytest.raises(DatasetError, match="no ground truth"):
        load_ground_truth(clip)
    clip.with_suffix(".json").write_text("{not json")
    with pytest.raises(DatasetError, match="JSON"):
        load_ground_truth(clip)
    clip.with_suffix(".json").write_text(json.dumps({"generator": "actionlrp.synthetic"}))
    with pytest.raises(DatasetError, match="version"):
        load_ground_truth(clip)


def test_unknown_action_and_too_few_frames_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="action"):
        make_action_clip(tmp_path / "x.mp4", "dance", seed=0)
    with pytest.raises(ValueError, match="n_frames"):
        make_action_clip(tmp_path / "x.mp4", "walk", seed=0, n_frames=10)
