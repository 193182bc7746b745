"""Dataset layouts, official splits and group-aware folds."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from actionlrp.datasets import (
    Clip,
    Split,
    folder_dataset,
    group_kfold,
    hmdb51_split,
    load_split,
    read_groups,
    train_test_split_folders,
    ucf101_split,
)
from actionlrp.errors import DatasetError

# --------------------------------------------------------------------------------------------
# Clips: generated once per session (the `tiny` fixture of conftest.py), copied into each test's
# own tree


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
    with pytest.raises(DatasetError, match=r"b\.csv:3: x\.mp4 is listed with two groups"):
        read_groups(twice)
    with pytest.raises(DatasetError, match="no such file"):
        read_groups(tmp_path / "missing.csv")


def test_leave_one_group_out_holds_out_each_ut_interaction_sequence_once(shared_data):
    from actionlrp.datasets import leave_one_group_out

    root = shared_data / "ut-interaction-set1"
    clips = folder_dataset(root)
    folds = leave_one_group_out(clips, read_groups(root / "groups.csv"))
    assert len(folds) == 10  # the dataset's protocol: 10 sequences, each held out in turn
    tested = [c.path for f in folds for c in f.test]
    assert sorted(tested) == sorted(c.path for c in clips)
    for fold in folds:
        sequences = {c.path.name.split("_")[2] for c in fold.test}  # set1_<i>_<seq>_<class>
        assert len(sequences) == 1
        assert not sequences & {c.path.name.split("_")[2] for c in fold.train}
        assert len({c.label for c in fold.test}) >= 5  # nearly every action in every sequence


def test_leave_one_group_out_needs_two_groups(tmp_path):
    from actionlrp.datasets import Clip, leave_one_group_out

    clips = [Clip(tmp_path / f"{i}.mp4", "a", group="g") for i in range(3)]
    with pytest.raises(DatasetError, match="1 group among 3 clips; leaving one out needs"):
        leave_one_group_out(clips)
