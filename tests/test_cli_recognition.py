"""The recognition commands end to end on real encoded clips: synth, train, evaluate, predict, cv,
reproduce-hmdb51."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from actionlrp import synthetic
from actionlrp.synthetic import SyntheticObject

FAST = ["--k", "4", "--jobs", "1"]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "actionlrp.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    result = run("synth", root, "--classes", "3", "--clips-per-class", "3", "--seed", "1", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["classes"] == ["pushups", "walk", "wave"]
    assert info["train"] + info["test"] == 9
    return root


@pytest.fixture(scope="module")
def model(dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    out = folder / "model.npz"
    cache = folder / "cache"
    result = run("train", dataset, "--out", out, "--cache", cache, *FAST, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["classes"] == ["pushups", "walk", "wave"] and info["n_failed"] == 0
    return out, cache


def test_synth_writes_train_and_test_folders_with_ground_truth(dataset):
    for split in ("train", "test"):
        for cls in ("pushups", "walk", "wave"):
            clips = [p for p in (dataset / split / cls).iterdir() if p.suffix in (".mp4", ".avi")]
            assert clips
            assert all(p.with_suffix(".json").is_file() for p in clips)


def test_evaluate_json_has_the_documented_keys(dataset, model):
    out, cache = model
    result = run("evaluate", dataset, "--model", out, "--cache", cache, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"accuracy", "mean_ap", "per_class_ap", "n_clips", "n_failed"} <= set(report)
    assert report["n_clips"] == 3 and report["n_failed"] == 0
    assert 0.0 <= report["accuracy"] <= 1.0
    assert set(report["per_class_ap"]) == {"pushups", "walk", "wave"}
    assert len(report["confusion_matrix"]) == 3


def test_predict_gives_a_class_and_scores_per_clip_and_reports_bad_clips(dataset, model, tmp_path):
    out, cache = model
    clips = sorted((dataset / "test").rglob("*.mp4")) + sorted((dataset / "test").rglob("*.avi"))
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    result = run("predict", *clips[:2], bad, "--model", out, "--cache", cache, "--json")
    assert result.returncode == 1  # partly done
    data = json.loads(result.stdout)
    assert data["n_failed"] == 1
    good = [c for c in data["clips"] if "error" not in c]
    assert len(good) == 2
    for clip in good:
        assert clip["class"] in clip["scores"] and len(clip["scores"]) == 3
        assert clip["class"] == max(clip["scores"], key=clip["scores"].get)
    assert "bad.mp4" in data["clips"][2]["error"]
    assert "bad.mp4" in result.stderr


def test_evaluate_refuses_a_damaged_model(dataset, model, tmp_path):
    out, cache = model
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(out.read_bytes()[:1000])
    result = run("evaluate", dataset, "--model", damaged, "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "damaged.npz: unreadable model file" in result.stderr
    assert "Traceback" not in result.stderr


def test_cv_on_a_folder_dataset(dataset, model):
    _, cache = model
    result = run("cv", dataset / "train", "--folds", "2", "--cache", cache, *FAST, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"accuracy", "mean_ap", "per_class_ap", "n_clips", "n_failed", "folds"} <= set(report)
    assert len(report["folds"]) == 2 and report["n_clips"] == 6


def test_cv_leaves_one_group_out_from_a_group_column(dataset, model, tmp_path):
    _, cache = model
    clips = sorted(p for p in (dataset / "train").rglob("*") if p.suffix in (".mp4", ".avi"))
    csv = tmp_path / "groups.csv"
    rows = [f"{c.parent.name}/{c.name},{c.parent.name},seq{i % 2}" for i, c in enumerate(clips)]
    csv.write_text("clip,label,group\n" + "\n".join(rows) + "\n")
    args = ("cv", dataset / "train", "--groups", csv, "--leave-one-group-out", "--cache", cache)
    result = run(*args, *FAST, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [f["test_group"] for f in report["folds"]] == ["seq0", "seq1"]
    assert sum(f["n_clips"] for f in report["folds"]) == len(clips) == 6
    assert "accuracy_std" in report
    result = run("cv", dataset / "train", "--leave-one-group-out", "--cache", cache, *FAST)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "actionlrp: --leave-one-group-out needs --groups CSV (clip and its group)"
    )


@pytest.fixture(scope="module")
def fake_hmdb51(tmp_path_factory, shared_data):
    """HMDB51 layout: the real wave / cartwheel clips plus generated ones, official split files."""
    root = tmp_path_factory.mktemp("hmdb51")
    videos, splits = root / "videos", root / "splits"
    splits.mkdir()
    for cls in ("wave", "cartwheel"):
        (videos / cls).mkdir(parents=True)
        for clip in sorted((shared_data / "formats" / "hmdb51" / cls).glob("*.avi")):
            shutil.copy(clip, videos / cls / clip.name)
        velocity = (0.0, 2.0) if cls == "wave" else (2.0, 0.0)
        for i in range(4):
            obj = SyntheticObject("translate", size=32, velocity=velocity)
            synthetic.make_clip(
                videos / cls / f"gen_{cls}_{i}.avi",
                [obj],
                codec="mpeg4",
                width=128,
                height=96,
                n_frames=30,
                seed=i,
            )
    for cls in ("wave", "cartwheel"):
        names = sorted(p.name for p in (videos / cls).iterdir())
        for n in (1, 2, 3):
            lines = []
            for i, name in enumerate(names):
                tag = 2 if (i + n) % 3 == 0 else 1
                lines.append(f"{name} {tag} ")
            (splits / f"{cls}_test_split{n}.txt").write_text("\n".join(lines) + "\n")
    return videos, splits


def test_reproduce_hmdb51_runs_three_splits(fake_hmdb51, tmp_path):
    videos, splits = fake_hmdb51
    result = run(
        "reproduce-hmdb51",
        "--root",
        videos,
        "--splits",
        splits,
        "--cache",
        tmp_path,
        *FAST,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["split"] for s in report["splits"]] == [1, 2, 3]
    assert {"accuracy", "accuracy_std", "mean_ap", "mean_ap_std"} <= set(report)
    for s in report["splits"]:
        assert s["n_test"] >= 1 and s["n_train"] >= 4 and 0.0 <= s["accuracy"] <= 1.0


def test_train_on_hmdb51_layout_with_split_files(fake_hmdb51, tmp_path):
    videos, splits = fake_hmdb51
    out = tmp_path / "m.npz"
    result = run(
        "train",
        videos,
        "--layout",
        "hmdb51",
        "--splits",
        splits,
        "--split",
        "2",
        "--out",
        out,
        "--cache",
        tmp_path / "c",
        *FAST,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["classes"] == ["cartwheel", "wave"]
    assert out.is_file()
