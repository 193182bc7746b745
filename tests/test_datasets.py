"""Dataset layouts, official splits, group-aware folds, and cached dataset-scale extraction."""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import sys
import warnings
from pathlib import Path

import av
import numpy as np
import pytest

from actionlrp import datasets, synthetic
from actionlrp.datasets import (
    Clip,
    ExtractionResult,
    Split,
    extract_descriptors,
    folder_dataset,
    group_kfold,
    hmdb51_split,
    load_split,
    read_groups,
    train_test_split_folders,
    ucf101_split,
)
from actionlrp.descriptors import FEATURE_TYPES, DescriptorParams, describe
from actionlrp.errors import DatasetError
from actionlrp.motion import motion_field

# --------------------------------------------------------------------------------------------
# Clips: generated once per session, copied into each test's own tree


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny real clips (96×72, 20 frames), a text file named .mp4 and an MJPEG clip."""
    folder = tmp_path_factory.mktemp("dataset_clips")
    clips = {}
    for name, codec, suffix, vx in (
        ("right_h264", "libx264", ".mp4", 2.0),
        ("left_h264", "libx264", ".mp4", -2.0),
        ("right_mpeg4", "mpeg4", ".avi", 2.0),
        ("left_mpeg4", "mpeg4", ".avi", -2.0),
    ):
        clip = synthetic.moving_square_clip(
            folder / f"{name}{suffix}", codec=codec, n_frames=20, width=96, height=72, vx=vx
        )
        clips[name] = clip.path
    text = folder / "not_a_video.mp4"
    text.write_text("this is text, not a video\n")
    clips["text"] = text
    scene = synthetic.render_scene(
        clip.objects, width=96, height=72, n_frames=20, pan=(0.0, 0.0), seed=0
    )
    mjpeg = folder / "square_mjpeg.avi"
    with av.open(str(mjpeg), "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 72, "yuvj420p"
        for rgb in scene.frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    clips["mjpeg"] = mjpeg
    return clips


def place(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline=newline) as f:
        f.write(text)
    return path


# --------------------------------------------------------------------------------------------
# ROOT/<class>/<clip>


@pytest.fixture
def folder_tree(tmp_path, tiny) -> Path:
    root = tmp_path / "dataset"
    place(tiny["right_h264"], root / "right" / "b.mp4")
    place(tiny["right_mpeg4"], root / "right" / "a.AVI")  # suffixes match case-insensitively
    place(tiny["left_h264"], root / "left" / "c.mkv")
    place(tiny["left_mpeg4"], root / "left" / "sub" / "deeper.avi")  # two levels down
    place(tiny["right_h264"], root / "right" / ".hidden.mp4")
    place(tiny["right_h264"], root / ".trash" / "x.mp4")
    write(root / "right" / "notes.txt", "not a clip")
    write(root / "groups.csv", "clip,label,source_video\nright/b.mp4,right,s1\n")
    write(root / "LICENSE", "MIT")
    write(root / "README", "readme")
    (root / "empty_class").mkdir()
    return root


def test_folder_dataset_lists_each_class_folders_videos_sorted_and_ignores_other_files(
    folder_tree,
):
    clips = folder_dataset(folder_tree)
    assert clips == [
        Clip(folder_tree / "left" / "c.mkv", "left"),
        Clip(folder_tree / "right" / "a.AVI", "right"),
        Clip(folder_tree / "right" / "b.mp4", "right"),
    ]


def test_folder_dataset_accepts_a_string_and_gives_paths(folder_tree):
    clips = folder_dataset(str(folder_tree))
    assert all(isinstance(c.path, Path) and c.path.is_file() for c in clips)


def test_missing_root_is_a_one_line_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match=r"^\S*nowhere: no such dataset folder$"):
        folder_dataset(tmp_path / "nowhere")


def test_root_without_class_folders_is_a_dataset_error_that_says_so(tmp_path, tiny):
    write(tmp_path / "labels.csv", "clip,label\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folder holds a video file"):
        folder_dataset(tmp_path)
    place(tiny["right_h264"], tmp_path / "loose.mp4")
    with pytest.raises(DatasetError, match="1 video files lie directly in the folder"):
        folder_dataset(tmp_path)


def test_train_and_test_folders_give_both_halves(tmp_path, tiny):
    place(tiny["right_h264"], tmp_path / "train" / "right" / "r1.mp4")
    place(tiny["left_h264"], tmp_path / "train" / "left" / "l1.mp4")
    place(tiny["right_mpeg4"], tmp_path / "test" / "right" / "r2.avi")
    write(tmp_path / "labels.csv", "clip,label\n")
    split = train_test_split_folders(tmp_path)
    assert [c.path.name for c in split.train] == ["l1.mp4", "r1.mp4"]
    assert [c.path.name for c in split.test] == ["r2.avi"]
    assert split.classes == ("left", "right")
    assert load_split(tmp_path) == split


def test_train_test_folders_need_both(tmp_path, tiny):
    place(tiny["right_h264"], tmp_path / "train" / "right" / "r1.mp4")
    with pytest.raises(DatasetError, match=r"test: no such folder"):
        train_test_split_folders(tmp_path)


def test_load_split_of_a_plain_folder_is_all_train_and_empty_test(folder_tree):
    split = load_split(folder_tree, layout="folders")
    assert list(split.train) == folder_dataset(folder_tree)
    assert split.test == ()


def test_load_split_rejects_unknown_layouts_and_stray_split_folders(folder_tree):
    with pytest.raises(ValueError, match="layout must be"):
        load_split(folder_tree, layout="kinetics")
    with pytest.raises(DatasetError, match="hmdb51 and ucf101 layouts only"):
        load_split(folder_tree, layout="folders", splits_dir=folder_tree)


def test_split_classes_are_the_sorted_union_and_lists_become_tuples(tmp_path):
    split = Split([Clip(tmp_path / "a", "zeta")], [Clip(tmp_path / "b", "alpha")])
    assert split.classes == ("alpha", "zeta")
    assert isinstance(split.train, tuple) and isinstance(split.test, tuple)


# --------------------------------------------------------------------------------------------
# HMDB51

HMDB_WAVE = (
    "RATRACE_wave_f_nm_np1_fr_goo_37.avi",
    "SchoolRulesHowTheyHelpUs_wave_f_nm_np1_ba_med_0.avi",
    "TrumanShow_wave_f_nm_np1_fr_med_26.avi",
)
HMDB_CARTWHEEL = "hmdb51_Turnk_r_Pippi_Michel_cartwheel_f_cm_np2_le_med_6.avi"


@pytest.fixture
def hmdb51_tree(tmp_path, shared_data, tiny) -> tuple[Path, Path]:
    """The 4 real HMDB51 clips plus generated ones, with split 1 in the official format."""
    root, splits = tmp_path / "hmdb51", tmp_path / "testTrainMulti_7030_splits"
    for name in HMDB_WAVE:
        place(shared_data / "formats" / "hmdb51" / "wave" / name, root / "wave" / name)
    src = shared_data / "formats" / "hmdb51" / "cartwheel" / HMDB_CARTWHEEL
    place(src, root / "cartwheel" / HMDB_CARTWHEEL)
    place(tiny["right_mpeg4"], root / "cartwheel" / "Synth_cartwheel_f_cm_np1_le_goo_0.avi")
    place(tiny["left_mpeg4"], root / "run" / "Synth_run_f_cm_np1_le_goo_0.avi")
    place(tiny["right_mpeg4"], root / "run" / "Other_run_f_cm_np1_le_goo_1.avi")
    write(root / "README.txt", "not a class")
    # Official lines end in a space: "<clip>.avi <tag> ".
    lines = "".join(f"{n} {t} \n" for n, t in zip(HMDB_WAVE, "120", strict=True))
    write(splits / "wave_test_split1.txt", lines)
    write(
        splits / "cartwheel_test_split1.txt",
        f"{HMDB_CARTWHEEL} 2 \nSynth_cartwheel_f_cm_np1_le_goo_0.avi 1 \n",
    )
    write(
        splits / "run_test_split1.txt",
        "Synth_run_f_cm_np1_le_goo_0.avi 1 \n\nOther_run_f_cm_np1_le_goo_1.avi 2 \n",
    )
    return root, splits


def test_hmdb51_split_puts_tag_1_in_train_tag_2_in_test_and_leaves_tag_0_out(hmdb51_tree):
    root, splits = hmdb51_tree
    split = hmdb51_split(root, splits, 1)
    assert [(c.label, c.path.name) for c in split.train] == [
        ("cartwheel", "Synth_cartwheel_f_cm_np1_le_goo_0.avi"),
        ("run", "Synth_run_f_cm_np1_le_goo_0.avi"),
        ("wave", HMDB_WAVE[0]),
    ]
    assert [(c.label, c.path.name) for c in split.test] == [
        ("cartwheel", HMDB_CARTWHEEL),
        ("run", "Other_run_f_cm_np1_le_goo_1.avi"),
        ("wave", HMDB_WAVE[1]),
    ]
    assert all(c.path.is_file() and c.path.parent.name == c.label for c in split.train)
    assert split.classes == ("cartwheel", "run", "wave")


def test_hmdb51_group_is_the_source_video_in_the_clip_name(hmdb51_tree):
    split = hmdb51_split(*hmdb51_tree, 1)
    groups = {c.path.name: c.group for c in split.train + split.test}
    assert groups[HMDB_WAVE[0]] == "RATRACE"
    assert groups[HMDB_CARTWHEEL] == "hmdb51_Turnk_r_Pippi_Michel"


def test_load_split_finds_the_hmdb51_split_folder_by_its_official_name(hmdb51_tree):
    root, splits = hmdb51_tree
    shutil.move(splits, root / splits.name)
    assert load_split(root, "hmdb51", split=1) == hmdb51_split(root, root / splits.name, 1)


def test_hmdb51_missing_split_files_are_a_dataset_error(hmdb51_tree):
    with pytest.raises(DatasetError, match=r"no HMDB51 split file \*_test_split2\.txt"):
        hmdb51_split(*hmdb51_tree, 2)


def test_hmdb51_class_folder_without_split_file_is_named(hmdb51_tree, tiny):
    root, splits = hmdb51_tree
    place(tiny["left_mpeg4"], root / "jump" / "x_jump_0.avi")
    with pytest.raises(DatasetError, match=r"jump_test_split1\.txt: missing split file"):
        hmdb51_split(root, splits, 1)


def test_hmdb51_clips_listed_but_absent_name_the_first_and_count_them(hmdb51_tree):
    root, splits = hmdb51_tree
    with open(splits / "run_test_split1.txt", "a") as f:
        f.write("Gone_run_0.avi 1 \nGone_run_1.avi 2 \nGone_run_2.avi 0 \n")
    with pytest.raises(DatasetError) as info:
        hmdb51_split(root, splits, 1)
    message = str(info.value)
    assert message.startswith(str(root / "run" / "Gone_run_0.avi") + ": listed in ")
    assert "run_test_split1.txt" in message
    assert "(2 listed clips are absent)" in message  # the tag-0 clip is not needed
    assert "\n" not in message


def test_hmdb51_malformed_line_names_file_and_line(hmdb51_tree):
    root, splits = hmdb51_tree
    write(splits / "run_test_split1.txt", "Synth_run_f_cm_np1_le_goo_0.avi 1\nbroken 7\n")
    with pytest.raises(DatasetError, match=r"run_test_split1\.txt:2: expected"):
        hmdb51_split(root, splits, 1)


# --------------------------------------------------------------------------------------------
# UCF101

UCF_REAL = ("v_SoccerJuggling_g23_c01.avi", "v_SoccerJuggling_g24_c01.avi")


@pytest.fixture
def ucf101_tree(tmp_path, shared_data, tiny) -> tuple[Path, Path]:
    """The 2 real UCF101 clips plus generated ones, with official-format lists (CRLF)."""
    root, splits = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    for name in UCF_REAL:
        src = shared_data / "formats" / "ucf101" / "SoccerJuggling" / name
        place(src, root / "SoccerJuggling" / name)
    place(tiny["right_mpeg4"], root / "MovingRight" / "v_MovingRight_g01_c01.avi")
    place(tiny["right_mpeg4"], root / "MovingRight" / "v_MovingRight_g01_c02.avi")
    place(tiny["right_h264"], root / "MovingRight" / "v_MovingRight_g08_c01.avi")
    write(splits / "classInd.txt", "1 MovingRight\n2 SoccerJuggling\n", "\r\n")
    write(
        splits / "trainlist01.txt",
        "MovingRight/v_MovingRight_g08_c01.avi 1\nSoccerJuggling/v_SoccerJuggling_g23_c01.avi 2\n",
        "\r\n",
    )
    write(
        splits / "testlist01.txt",
        "MovingRight/v_MovingRight_g01_c01.avi\nMovingRight/v_MovingRight_g01_c02.avi\n"
        "SoccerJuggling/v_SoccerJuggling_g24_c01.avi\n",
        "\r\n",
    )
    return root, splits


def test_ucf101_split_labels_clips_by_folder_and_groups_them_by_gnn(ucf101_tree):
    root, splits = ucf101_tree
    split = ucf101_split(root, splits, 1)
    assert [(c.label, c.path.name, c.group) for c in split.train] == [
        ("MovingRight", "v_MovingRight_g08_c01.avi", "MovingRight_g08"),
        ("SoccerJuggling", UCF_REAL[0], "SoccerJuggling_g23"),
    ]
    assert [(c.label, c.path.name, c.group) for c in split.test] == [
        ("MovingRight", "v_MovingRight_g01_c01.avi", "MovingRight_g01"),
        ("MovingRight", "v_MovingRight_g01_c02.avi", "MovingRight_g01"),
        ("SoccerJuggling", UCF_REAL[1], "SoccerJuggling_g24"),
    ]
    assert all(c.path.is_file() for c in split.train + split.test)
    assert load_split(root, "ucf101", splits_dir=splits, split=1) == split


def test_ucf101_works_without_class_index(ucf101_tree):
    root, splits = ucf101_tree
    with_index = ucf101_split(root, splits, 1)
    (splits / "classInd.txt").unlink()
    assert ucf101_split(root, splits, 1) == with_index


def test_ucf101_class_number_that_contradicts_class_index_is_an_error(ucf101_tree):
    root, splits = ucf101_tree
    write(splits / "trainlist01.txt", "MovingRight/v_MovingRight_g08_c01.avi 2\n")
    with pytest.raises(DatasetError, match=r"trainlist01\.txt:1: class number 2 is"):
        ucf101_split(root, splits, 1)


def test_ucf101_missing_list_and_absent_clip_are_dataset_errors(ucf101_tree):
    root, splits = ucf101_tree
    with pytest.raises(DatasetError, match=r"trainlist03\.txt: no such file"):
        ucf101_split(root, splits, 3)
    with open(splits / "testlist01.txt", "a") as f:
        f.write("MovingRight/v_MovingRight_g09_c01.avi\n")
    with pytest.raises(DatasetError, match=r"v_MovingRight_g09_c01\.avi: listed in .*testlist01"):
        ucf101_split(root, splits, 1)


# --------------------------------------------------------------------------------------------
# Groups and group k-fold


@pytest.fixture(scope="session")
def fight_dev(shared_data) -> Path:
    return shared_data / "fight-dev"


def test_read_groups_reads_the_shared_csv_by_relative_path(fight_dev):
    groups = read_groups(fight_dev / "groups.csv")
    assert len(groups) == 100
    assert groups["fight/fi001.mp4"] == "7q6KJoSgxmY"
    assert all("\\" not in k and not k.startswith("./") for k in groups)


def source_of(clips, groups):
    return {c.path: groups[f"{c.path.parent.name}/{c.path.name}"] for c in clips}


def test_group_kfold_never_puts_a_source_video_on_both_sides(fight_dev):
    clips = folder_dataset(fight_dev)
    groups = read_groups(fight_dev / "groups.csv")
    source = source_of(clips, groups)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every clip has an entry: no warning
        folds = group_kfold(clips, n_folds=5, groups=groups, seed=0)
    assert len(folds) == 5
    for fold in folds:
        train = {source[c.path] for c in fold.train}
        test = {source[c.path] for c in fold.test}
        assert not train & test


def test_group_kfold_tests_every_clip_exactly_once(fight_dev):
    clips = folder_dataset(fight_dev)
    folds = group_kfold(clips, n_folds=5, groups=read_groups(fight_dev / "groups.csv"))
    tested = [c.path for fold in folds for c in fold.test]
    assert sorted(tested) == sorted(c.path for c in clips)
    for fold in folds:
        assert len(fold.train) + len(fold.test) == len(clips)


def test_group_kfold_keeps_class_proportions_in_every_fold(fight_dev):
    clips = folder_dataset(fight_dev)  # 50 fight, 50 noFight
    folds = group_kfold(clips, n_folds=5, groups=read_groups(fight_dev / "groups.csv"))
    for fold in folds:
        share = np.mean([c.label == "fight" for c in fold.test])
        assert 0.35 <= share <= 0.65, share
        assert 15 <= len(fold.test) <= 25


def test_group_kfold_is_deterministic_and_the_seed_matters(fight_dev):
    clips = folder_dataset(fight_dev)
    groups = read_groups(fight_dev / "groups.csv")
    assert group_kfold(clips, 5, groups, seed=0) == group_kfold(clips, 5, groups, seed=0)
    assert group_kfold(clips, 5, groups, seed=0) != group_kfold(clips, 5, groups, seed=1)


def fake_clips(n_per_class: int = 6) -> list[Clip]:
    return [
        Clip(Path("/data/set") / label / f"{label}{i:02d}.mp4", label)
        for label in ("a", "b")
        for i in range(n_per_class)
    ]


def fold_of(folds: list[Split]) -> dict[Path, int]:
    return {c.path: i for i, fold in enumerate(folds) for c in fold.test}


@pytest.mark.parametrize("key", ["name", "relative path", "dot-slash path", "backslashes"])
def test_groups_match_clips_by_file_name_or_relative_path(key):
    clips = fake_clips()
    spell = {
        "name": lambda c: c.path.name,
        "relative path": lambda c: f"{c.label}/{c.path.name}",
        "dot-slash path": lambda c: f"./{c.label}/{c.path.name}",
        "backslashes": lambda c: f"{c.label}\\{c.path.name}",
    }[key]
    # Three sources: each holds clips of both classes.
    groups = {spell(c): f"source{i % 3}" for i, c in enumerate(clips)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folds = group_kfold(clips, n_folds=3, groups=groups)
    where = fold_of(folds)
    for i, c in enumerate(clips):
        for j, d in enumerate(clips):
            if i % 3 == j % 3:
                assert where[c.path] == where[d.path]


def test_clips_without_a_group_are_their_own_group():
    clips = fake_clips(5)
    folds = group_kfold(clips, n_folds=5)
    assert [len(f.test) for f in folds] == [2] * 5
    assert all({c.label for c in f.test} == {"a", "b"} for f in folds)


def test_clip_group_field_is_used_when_no_groups_are_given():
    clips = [Clip(c.path, c.label, group=f"g{i // 2}") for i, c in enumerate(fake_clips())]
    where = fold_of(group_kfold(clips, n_folds=3))
    for i in range(0, len(clips), 2):
        assert where[clips[i].path] == where[clips[i + 1].path]


def test_unmatched_clips_warn_and_become_their_own_group():
    clips = fake_clips()
    groups = {clips[0].path.name: "s", clips[1].path.name: "s"}
    with pytest.warns(UserWarning, match="10 of 12 clips have none"):
        folds = group_kfold(clips, n_folds=3, groups=groups)
    where = fold_of(folds)
    assert where[clips[0].path] == where[clips[1].path]


def test_too_few_groups_for_the_folds_is_a_dataset_error():
    clips = [Clip(c.path, c.label, group=str(i % 3)) for i, c in enumerate(fake_clips())]
    with pytest.raises(DatasetError, match=r"3 groups .* cannot fill 5 folds; use n_folds ≤ 3"):
        group_kfold(clips, n_folds=5)


def test_groups_that_match_no_clip_are_a_dataset_error():
    with pytest.raises(DatasetError, match="match none of the 12 clips"):
        group_kfold(fake_clips(), n_folds=3, groups={"other/x.mp4": "s"})


def test_a_file_name_with_entries_in_different_groups_is_ambiguous():
    groups = {"train/a/a00.mp4": "s1", "test/a/a00.mp4": "s2"}
    with pytest.raises(DatasetError, match="different source videos"):
        group_kfold(fake_clips(), n_folds=3, groups=groups)


def test_read_groups_rejects_missing_columns_and_conflicting_rows(tmp_path):
    bad = write(tmp_path / "a.csv", "file,label\nx.mp4,a\n")
    with pytest.raises(DatasetError, match="must name the columns clip and source_video"):
        read_groups(bad)
    twice = write(tmp_path / "b.csv", "clip,label,source_video\nx.mp4,a,s1\n./x.mp4,a,s2\n")
    with pytest.raises(DatasetError, match=r"b\.csv:3: x\.mp4 is listed with two source videos"):
        read_groups(twice)
    with pytest.raises(DatasetError, match="no such file"):
        read_groups(tmp_path / "missing.csv")


# --------------------------------------------------------------------------------------------
# Extraction

# `describe` is reproducible to the last bit only up to cv2.magnitude, whose float32 result can
# differ by 1 ulp with the buffers' memory alignment; results computed anew are compared to
# 1e-6 (values lie in [0, 1]), cache round trips bit for bit.
ATOL = 1e-6


def assert_same(a: ExtractionResult, b: ExtractionResult, exact: bool = False) -> None:
    assert a.paths == b.paths
    assert a.failures == b.failures
    assert a.n_frames == b.n_frames
    for x, y in zip(a.descriptors, b.descriptors, strict=True):
        assert (x is None) == (y is None)
        if x is None:
            continue
        np.testing.assert_array_equal(x.boxes, y.boxes)
        for k in FEATURE_TYPES:
            assert x.features[k].dtype == y.features[k].dtype == np.float32
            if exact:
                np.testing.assert_array_equal(x.features[k], y.features[k])
            else:
                np.testing.assert_allclose(x.features[k], y.features[k], rtol=0, atol=ATOL)


@pytest.fixture
def good(tiny) -> list[Path]:
    return [tiny["right_h264"], tiny["left_mpeg4"], tiny["left_h264"]]


def cache_files(cache: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (cache / "descriptors").glob("*.npz")}


def test_extraction_equals_describe_of_motion_field(good, tmp_path):
    params = DescriptorParams(normalization="l2")
    result = extract_descriptors(good, params=params, cache_dir=tmp_path, n_jobs=1)
    assert result.failures == ()
    assert result.paths == tuple(good)
    for path, desc, frames in zip(good, result.descriptors, result.n_frames, strict=True):
        field = motion_field(path)
        direct = describe(field, params)
        assert frames == field.n_frames == 20
        assert len(desc) == len(direct) > 0
        np.testing.assert_array_equal(desc.boxes, direct.boxes)
        for k in FEATURE_TYPES:
            np.testing.assert_allclose(desc.features[k], direct.features[k], rtol=0, atol=ATOL)


def test_second_run_reads_the_cache_and_extracts_nothing(good, tmp_path, monkeypatch):
    first = extract_descriptors(good, cache_dir=tmp_path, n_jobs=2)
    assert first.from_cache == (False,) * 3
    written = cache_files(tmp_path)
    assert len(written) == 3

    def no_extraction(*args, **kwargs):
        raise AssertionError("motion_field called although every clip is cached")

    monkeypatch.setattr(datasets, "motion_field", no_extraction)
    second = extract_descriptors(good, cache_dir=tmp_path, n_jobs=2)
    assert second.from_cache == (True,) * 3
    assert_same(first, second, exact=True)
    assert cache_files(tmp_path) == written  # nothing rewritten, nothing added


def test_cache_is_keyed_by_content_and_parameters_not_by_file_name(good, tmp_path):
    extract_descriptors(good[:1], cache_dir=tmp_path, n_jobs=1)
    renamed = place(good[0], tmp_path / "elsewhere" / "renamed.mp4")
    assert extract_descriptors([renamed], cache_dir=tmp_path, n_jobs=1).from_cache == (True,)
    coarser = extract_descriptors([renamed], cell=16, cache_dir=tmp_path, n_jobs=1)
    assert coarser.from_cache == (False,)
    assert len(cache_files(tmp_path)) == 2


def test_default_cache_folder_comes_from_the_environment(good, tmp_path, monkeypatch):
    monkeypatch.setenv("ACTIONLRP_CACHE", str(tmp_path / "env-cache"))
    extract_descriptors(good[:1], n_jobs=1)
    assert len(cache_files(tmp_path / "env-cache")) == 1


def test_corrupt_cache_entry_is_recomputed_and_replaced(good, tmp_path):
    first = extract_descriptors(good, cache_dir=tmp_path, n_jobs=1)
    entries = sorted(cache_files(tmp_path))
    entries[0].write_bytes(b"PK\x03\x04 truncated garbage")
    entries[1].write_bytes(entries[1].read_bytes()[:200])
    again = extract_descriptors(good, cache_dir=tmp_path, n_jobs=1)
    assert sorted(again.from_cache) == [False, False, True]
    assert_same(first, again)
    third = extract_descriptors(good, cache_dir=tmp_path, n_jobs=1)
    assert third.from_cache == (True,) * 3  # the entries were rewritten whole
    assert_same(again, third, exact=True)


def test_bad_clips_are_reported_in_failures_and_the_others_succeed(tiny, tmp_path):
    paths = [tiny["right_h264"], tiny["text"], tiny["mjpeg"], tiny["left_mpeg4"]]
    result = extract_descriptors(paths, cache_dir=tmp_path, n_jobs=2)
    assert [p for p, _ in result.failures] == [tiny["text"], tiny["mjpeg"]]
    for path, message in result.failures:
        assert message.startswith(f"{path}: ")
        assert "\n" not in message
    assert "not a readable video" in result.failures[0][1]
    assert "MJPEG exports no motion vectors" in result.failures[1][1]
    assert [d is not None for d in result.descriptors] == [True, False, False, True]
    assert result.n_frames[1] == result.n_frames[2] == 0
    assert result.n_frames[0] == result.n_frames[3] == 20
    assert len(cache_files(tmp_path)) == 2  # failures are not cached


def test_a_missing_file_is_a_failure_not_an_exception(good, tmp_path):
    result = extract_descriptors([tmp_path / "gone.mp4", good[0]], cache_dir=tmp_path, n_jobs=1)
    assert result.failures == ((tmp_path / "gone.mp4", f"{tmp_path / 'gone.mp4'}: no such file"),)
    assert result.descriptors[1] is not None


def test_unexpected_exceptions_are_reported_with_their_type(good, tmp_path, monkeypatch):
    real = datasets.describe

    def flaky(field, params=None):
        if field.codec == "mpeg4":
            raise RuntimeError("boom\nsecond line")
        return real(field, params)

    monkeypatch.setattr(datasets, "describe", flaky)
    result = extract_descriptors(good, cache=False, n_jobs=1)
    assert result.failures == ((good[1], f"{good[1]}: RuntimeError: boom second line"),)
    assert result.descriptors[0] is not None and result.descriptors[2] is not None


def test_transcoded_cache_entry_is_not_used_without_transcode(tiny, tmp_path):
    done = extract_descriptors([tiny["mjpeg"]], cache_dir=tmp_path, n_jobs=1, transcode=True)
    assert done.failures == () and len(done.descriptors[0]) > 0
    assert len(cache_files(tmp_path)) == 1
    again = extract_descriptors([tiny["mjpeg"]], cache_dir=tmp_path, n_jobs=1, transcode=True)
    assert again.from_cache == (True,)
    refused = extract_descriptors([tiny["mjpeg"]], cache_dir=tmp_path, n_jobs=1)
    assert refused.from_cache == (False,)
    assert "no motion vectors" in refused.failures[0][1]


def test_two_processes_give_the_same_result_as_one(tiny):
    paths = [tiny["right_h264"], tiny["text"], tiny["left_mpeg4"], tiny["left_h264"]]
    paths += [tiny["right_mpeg4"], tiny["mjpeg"]]
    one = extract_descriptors(paths, cache=False, n_jobs=1)
    two = extract_descriptors(paths, cache=False, n_jobs=2)
    assert [p for p, _ in two.failures] == [tiny["text"], tiny["mjpeg"]]
    assert_same(one, two)
    assert two.seconds > 0


def test_clips_are_accepted_in_place_of_paths(good, tmp_path):
    clips = [Clip(p, "x") for p in good]
    assert extract_descriptors(clips, cache=False, n_jobs=1).paths == tuple(good)


_KILLER_HOOK = """
import os

killer = os.environ.get("ACTIONLRP_TEST_KILLER")
if killer:
    import actionlrp.datasets as datasets

    real = datasets.motion_field

    def crashing(path, *args, **kwargs):
        if str(path) == killer:
            os._exit(1)  # what a segfault in the decoder looks like from the parent
        return real(path, *args, **kwargs)

    datasets.motion_field = crashing
"""


def test_a_clip_that_kills_its_worker_is_reported_and_the_others_succeed(
    tiny, monkeypatch, tmp_path
):
    # Fresh "spawn" workers pick the crash up from a sitecustomize on their PYTHONPATH: no fork
    # of this (threaded) test process, whose locks a forked child could inherit held.
    (tmp_path / "sitecustomize.py").write_text(_KILLER_HOOK)
    killer = tiny["left_h264"]
    monkeypatch.setenv("ACTIONLRP_TEST_KILLER", str(killer))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    monkeypatch.setattr(datasets, "_process_context", lambda: multiprocessing.get_context("spawn"))
    paths = [tiny["right_h264"], killer, tiny["right_mpeg4"], tiny["left_mpeg4"], tiny["text"]]
    result = extract_descriptors(paths, cache=False, n_jobs=2)
    assert [p for p, _ in result.failures] == [killer, tiny["text"]]
    assert result.failures[0][1].startswith(f"{killer}: the worker process died")
    assert [d is not None for d in result.descriptors] == [True, False, True, True, False]


def test_a_pool_found_broken_when_submitting_is_replaced_and_the_batch_goes_on(tiny, monkeypatch):
    """A worker can die between two waits: the next submit then raises BrokenProcessPool.
    Here the first pool refuses its third clip that way; every clip must still be read."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    submitted: list[int] = []

    class BreaksOnce(ProcessPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            submitted.append(len(submitted))
            if len(submitted) == 3:
                raise BrokenProcessPool("a worker died")
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(datasets, "ProcessPoolExecutor", BreaksOnce)
    paths = [tiny["right_h264"], tiny["left_h264"], tiny["right_mpeg4"], tiny["left_mpeg4"]]
    result = extract_descriptors(paths, cache=False, n_jobs=2, progress=False)
    assert not result.failures
    assert all(d is not None and len(d) > 0 for d in result.descriptors)
    assert len(submitted) == 5  # the refused clip went to a fresh pool


def test_nothing_is_printed_on_stdout_and_no_bar_off_a_terminal(good, tmp_path, capfd):
    extract_descriptors(good, cache_dir=tmp_path, n_jobs=2, progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert "descriptors" not in err and "clip/s" not in err


def test_progress_bar_goes_to_stderr_on_a_terminal(good, tmp_path, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    extract_descriptors(good, cache_dir=tmp_path, n_jobs=1, progress=True)
    assert "descriptors" in terminal.getvalue() and "3/3" in terminal.getvalue()
    assert capsys.readouterr().out == ""
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    extract_descriptors(good, cache_dir=tmp_path, n_jobs=1, progress=False)
    assert quiet.getvalue() == ""


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"motion": "optical"}, "motion must be"),
        ({"cell": 0}, "cell must be"),
        ({"params": DescriptorParams(cube_px=(20,))}, "cube_px 20"),
        ({"params": DescriptorParams(normalization="max")}, "normalization"),
        ({"n_jobs": 0}, "n_jobs must be"),
    ],
)
def test_bad_arguments_raise_before_any_clip_is_read(kwargs, message, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "motion_field", lambda *a, **k: pytest.fail("clip was read"))
    with pytest.raises(ValueError, match=message):
        extract_descriptors([tmp_path / "x.mp4"], cache=False, **kwargs)


def test_a_single_path_is_not_taken_for_a_list_of_clips(good):
    with pytest.raises(ValueError, match="not one path"):
        extract_descriptors(str(good[0]))
