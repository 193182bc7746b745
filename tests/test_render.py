"""Rendering an explanation: colours, heatmap video, figures, summary and report."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import numpy as np
import pytest

from actionlrp.render import diverging_colours, overlay


def test_diverging_colours_red_for_positive_blue_for_negative_white_at_zero():
    rgb = diverging_colours(np.array([-1.0, 0.0, 1.0, 5.0]), 1.0)
    assert tuple(rgb[0]) == (0, 0, 255)
    assert tuple(rgb[1]) == (255, 255, 255)
    assert tuple(rgb[2]) == (255, 0, 0)
    assert tuple(rgb[3]) == (255, 0, 0)  # saturates beyond the limit


def test_overlay_leaves_irrelevant_pixels_unchanged_and_colours_relevant_ones():
    frame = np.full((16, 24, 3), 100, np.uint8)
    heat = np.zeros((2, 3))
    heat[0, 0] = 1.0
    out = overlay(frame, heat, 1.0, cell=8)
    assert out.shape == frame.shape
    assert (out[12:, 20:] == 100).all()
    assert out[2, 2, 0] > 150 and out[2, 2, 2] < 100  # reddish where R > 0


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    """Train a tiny model on the built-in data and explain one test clip through the CLI."""
    root = tmp_path_factory.mktemp("render")
    run = [sys.executable, "-m", "actionlrp.cli"]
    data = root / "data"
    subprocess.run(
        [*run, "synth", data, "--classes", "2", "--clips-per-class", "3", "--json"],
        check=True,
        capture_output=True,
    )
    model = root / "model.npz"
    subprocess.run(
        [
            *run,
            "train",
            data,
            "--out",
            model,
            "--k",
            "4",
            "--jobs",
            "1",
            "--cache",
            root / "c",
            "--json",
        ],
        check=True,
        capture_output=True,
    )
    clip = sorted((data / "test" / "walk").glob("*.*[4i]"))[0]
    out = root / "explanation"
    result = subprocess.run(
        [*run, "explain", clip, "--model", model, "--out", out, "--json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return clip, out, json.loads(result.stdout)


def test_explain_writes_every_part_of_the_report(explained):
    _, out, printed = explained
    for name in (
        "heatmap.mp4",
        "frame_relevance.png",
        "feature_shares.png",
        "top_frames.png",
        "feature_heatmaps.png",
        "summary.json",
        "report.html",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert printed["report"] == str(out / "report.html")
    assert printed["rule"]["name"] == "fine"  # the default
    assert printed["rule"]["histogram"] == "bins" and printed["rule"]["root"] == "still"
    scores = printed["scores"]
    assert set(scores) == {"pushups", "walk"}
    # a two-class model's explanation contrasts the two classes by default
    assert {printed["class"], printed["versus"]} == {"pushups", "walk"}
    assert printed["score"] == pytest.approx(scores[printed["class"]] - scores[printed["versus"]])


def test_summary_json_has_the_documented_keys_and_adds_up(explained):
    clip, out, _ = explained
    s = json.loads((out / "summary.json").read_text())
    assert {
        "class",
        "score",
        "relevance_total",
        "absorbed",
        "frame_relevance",
        "feature_relevance",
        "top_frames",
    } <= set(s)
    with av.open(str(clip)) as c:
        n_frames = sum(1 for _ in c.decode(video=0))
    assert len(s["frame_relevance"]) == n_frames
    assert sum(s["frame_relevance"]) == pytest.approx(s["relevance_total"], rel=1e-9, abs=1e-12)
    assert sum(s["feature_relevance"].values()) == pytest.approx(s["relevance_total"], rel=1e-9)
    assert s["score"] == pytest.approx(s["relevance_total"] + s["absorbed"], abs=1e-9)
    assert set(s["feature_relevance"]) == {"hof", "mbhx", "mbhy"}


def test_heatmap_video_is_h264_with_every_frame(explained):
    clip, out, _ = explained
    with av.open(str(out / "heatmap.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        n = sum(1 for _ in c.decode(video=0))
    with av.open(str(clip)) as c:
        assert n == sum(1 for _ in c.decode(video=0))


def test_report_is_self_contained(explained):
    _, out, _ = explained
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "data:video/mp4;base64," in page
    assert 'src="heatmap' not in page and 'src="/' not in page


def test_explain_dataset_writes_one_report_with_localisation_scores(explained, tmp_path):
    clip, out, _ = explained
    data = clip.parents[2]
    model = out.parent / "model.npz"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "actionlrp.cli",
            "explain-dataset",
            data,
            "--model",
            model,
            "--out",
            tmp_path / "ds",
            "--reports",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["n_clips"] == 2 and printed["n_failed"] == 0
    summary = json.loads((tmp_path / "ds" / "summary.json").read_text())
    assert summary["rule"] == {  # the same default as for one clip
        "name": "fine",
        "epsilon": 1.0,
        "epsilon_unit": "relative",
        "histogram": "bins",
        "root": "still",
    }
    assert set(summary["feature_shares"]) == {"pushups", "walk"}
    for row in summary["clips"]:
        assert 0.0 <= row["mass_on_actor"] <= row["mass_near_actor"] <= 1.0
        assert row["pointing_game"] in (0.0, 1.0)
        assert 0.0 <= row["top_frames_in_interval"] <= 1.0
    page = (tmp_path / "ds" / "report.html").read_text()
    assert "feature shares by class" in page and "data:image/png;base64," in page
    assert "rule fine: ε = 1 × the clip's mean |Ψ|, through the histogram bins" in page
    assert "measured from no motion" in page
    reports = [row["report"] for row in summary["clips"] if "report" in row]
    assert reports and all((tmp_path / "ds" / r).is_file() for r in reports)


def test_explain_with_the_papers_rule_and_an_unknown_class(explained, tmp_path):
    clip, out, _ = explained
    model = out.parent / "model.npz"
    run = [sys.executable, "-m", "actionlrp.cli", "explain", clip, "--model", model]
    result = subprocess.run(
        [*run, "--out", tmp_path / "p", "--rule", "paper", "--epsilon", "0.5", "--json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["rule"] == {
        "name": "paper",
        "epsilon": 0.5,
        "epsilon_unit": "relative",
        "histogram": "flat",
        "root": "zero",
    }
    for flag in ("--class", "--versus"):
        result = subprocess.run(
            [*run, "--out", tmp_path / "q", flag, "swim"], capture_output=True, text=True
        )
        assert result.returncode == 2
        assert result.stderr.strip() == (
            "actionlrp: class 'swim' is not one of the model's: pushups, walk"
        )
        assert not (tmp_path / "q" / "report.html").exists()
    result = subprocess.run(
        [*run, "--out", tmp_path / "r", "--class", "walk", "--versus", "", "--json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["versus"] is None
    assert printed["score"] == pytest.approx(printed["scores"]["walk"])
