"""Rendering an explanation: colours, heatmap video, figures, summary and report."""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import sys
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from actionlrp.pages import frame_chart_svg, rule_text, share_sentences
from actionlrp.render import diverging_colours, frame_times, overlay, overlay_at_width
from actionlrp.rules import get_rule


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


def test_overlay_at_width_upsamples_small_frames_and_shrinks_large_ones():
    heat = np.zeros((15, 20))
    heat[7, 10] = 1.0  # the cell at pixels y 56–63, x 80–87
    for width, height in ((160, 120), (1280, 960)):
        frame = np.full((height, width, 3), 100, np.uint8)
        out = overlay_at_width(frame, heat, 1.0, cell=width // 20)
        assert out.shape == (480, 640, 3)
        assert out[0, 0].tolist() == [100, 100, 100]  # untouched far from the heat
        y, x = (7.5 * 24) * 480 // 360, (10.5 * 32) * 640 // 640  # the cell's centre, scaled
        assert out[int(y), int(x), 0] > 150 and out[int(y), int(x), 2] < 100


def _clip_like(r, timestamps, fps=25.0, **numbers):
    """What the page's pieces read of an explanation, without a model."""
    r = np.asarray(r, dtype=np.float64)
    field = SimpleNamespace(
        timestamps=np.asarray(timestamps, dtype=np.float64), fps=fps, n_frames=len(r)
    )
    return SimpleNamespace(
        frame_relevance=r,
        field=field,
        top_frames=lambda k=5: np.argsort(-r, kind="stable")[:k],
        **numbers,
    )


def test_frame_times_are_the_timestamps_from_the_first_else_t_over_fps():
    field = SimpleNamespace(timestamps=np.array([0.5, 0.54, 0.6, 0.64]), fps=25.0, n_frames=4)
    start, duration = frame_times(field)
    assert start == pytest.approx([0, 0.04, 0.1, 0.14])
    assert duration == pytest.approx([0.04, 0.06, 0.04, 0.04])  # the last: 1 / fps
    field.timestamps = np.array([0.1, 0.3, 0.2, 0.4])  # e.g. an AVI with B-frames
    assert frame_times(field)[0] == pytest.approx([0, 0.04, 0.08, 0.12])


def test_frame_chart_has_one_bar_per_frame_the_interval_and_seek_times_inside_frames():
    r = [0.5, -0.25, 0.0, 1.0, 0.1]
    svg, data = frame_chart_svg(_clip_like(r, [1.0, 1.04, 1.08, 1.12, 1.16]), interval=(1, 3))
    bars = re.findall(r'<rect class="(pos|neg)" data-frame="(\d+)"', svg)
    assert [int(t) for _, t in bars] == [0, 1, 2, 3, 4]
    assert [k for k, _ in bars] == ["pos", "neg", "pos", "pos", "pos"]  # red ≥ 0, blue < 0
    assert svg.count("data-frame=") == 5  # nothing else in the chart is a frame
    assert svg.count('class="interval"') == 1 and "action interval" in svg
    assert 'class="zero"' in svg and 'id="cursor"' in svg
    assert ">frame (time from the first frame)<" in svg and ">relevance r<" in svg
    assert data["start"] == pytest.approx([0, 0.04, 0.08, 0.12, 0.16])
    assert data["seek"] == pytest.approx([0.02, 0.06, 0.10, 0.14, 0.18])  # half a frame in
    no_interval, _ = frame_chart_svg(_clip_like(r, [0, 1, 2, 3, 4]))
    assert 'class="interval"' not in no_interval


@pytest.mark.parametrize(
    ("score", "total", "expected"),
    [
        (
            2.0,
            1.86,
            "The heatmap accounts for 93 % of the score; 7 % was held back by the rule's "
            "stabiliser (ε) and is not shown anywhere in the clip.",
        ),
        (1.0, 0.999, "The heatmap accounts for 99.9 % of the score; 0.1 % was held back"),
        (1.0, 1.4, "The heatmap accounts for 140 % of the score, 40 % more than the score"),
        (-1.0, -0.5, "The heatmap accounts for 50 % of the score; 50 % was held back"),
        (1.0, -0.2, "The heatmap adds up to −20 % of the score (the opposite sign)"),
        (1e-4, 0.05, "The score (0.0001) is too close to 0 for a percentage"),
        (0.0, 0.0, "The score (0) is too close to 0 for a percentage"),
    ],
)
def test_share_sentence_says_how_much_of_the_score_the_heatmap_shows(score, total, expected):
    e = _clip_like(
        [total],
        [0.0],
        score=score,
        relevance_total=total,
        absorbed=score - total,
        absorbed_mass=0.25,
        scores={"a": 0.7, "b": 0.7 - score},
    )
    net, mass = share_sentences(e)
    assert net.startswith(expected)
    assert "25 % of it was held back (the absorbed mass)" in mass
    e.method = "occlusion"  # what is left is in the regions' interactions: no stabiliser
    net, mass = share_sentences(e)
    assert "stabiliser" not in net and "interactions between regions" in net
    assert "25 % of it lies in those interactions" in mass


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
    assert set(s["feature_relevance"]) == {"hof", "mbhx", "mbhy", "hog"}  # the defaults


def frame_starts(clip) -> np.ndarray:
    """When each frame of ``clip`` starts, in seconds from the first (t / fps where the decoded
    timestamps do not increase, as for an AVI with B-frames)."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        times = np.array([f.time for f in container.decode(stream)], dtype=np.float64)
        fps = float(stream.average_rate or stream.guessed_rate or 25)
    if len(times) > 1 and (np.diff(times) > 0).all():
        return times - times[0]
    return np.arange(len(times)) / fps


def test_heatmap_video_is_h264_with_every_frame_at_the_clips_times(explained):
    clip, out, _ = explained
    with av.open(str(out / "heatmap.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        times = np.array([f.time for f in c.decode(video=0)])
    starts = frame_starts(clip)
    assert len(times) == len(starts)
    assert times - times[0] == pytest.approx(starts, abs=1e-4)  # where the report seeks to


def _page(out) -> str:
    return (out / "report.html").read_text()


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_report_is_self_contained(explained):
    _, out, _ = explained
    page = _page(out)
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:") for s in sources), sources
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert page.count("data:video/mp4;base64,") == 1
    assert len(re.findall(r"<img ", page)) == 8  # 4 top frames, HOF, MBHx, MBHy, HOG
    assert "frame_relevance.png" not in page  # the chart is drawn in the page


def test_report_frame_chart_has_one_bar_per_frame_linked_to_the_video(explained):
    clip, out, _ = explained
    page = _page(out)
    r = json.loads((out / "summary.json").read_text())["frame_relevance"]
    svg = re.search(r'<svg id="frame-chart".*?</svg>', page, re.S).group(0)
    bars = re.findall(r'<rect class="(pos|neg)" data-frame="(\d+)"', svg)
    assert [int(t) for _, t in bars] == list(range(len(r)))
    assert [k for k, _ in bars] == ["pos" if v >= 0 else "neg" for v in r]
    assert 'id="cursor"' in svg and 'id="heatmap"' in page
    assert ('class="interval"' in svg) == clip.with_suffix(".json").is_file()  # ground truth
    data = json.loads(
        re.search(r'<script type="application/json" id="frame-data">(.*?)</script>', page).group(1)
    )
    starts = frame_starts(clip)
    assert data["start"] == pytest.approx(starts, abs=1e-6)
    assert all(a < s < b for a, s, b in zip(starts, data["seek"], starts[1:], strict=False))
    assert "timeupdate" in page and "requestAnimationFrame" in page


def test_report_asks_why_and_not_lists_the_scores_and_the_share_shown(explained):
    _, out, _ = explained
    page = _page(out)
    s = json.loads((out / "summary.json").read_text())
    heading = _text(re.search(r"<h1>(.*?)</h1>", page).group(1))
    assert heading == f"Why {s['class']} and not {s['versus']}?"  # contrasted by default
    rows = dict(re.findall(r'<tr class="(explained|contrasted)"><td>([^<]+?)\s*<', page))
    assert rows == {"explained": s["class"], "contrasted": s["versus"]}
    assert "f<sub>c</sub> − f<sub>versus</sub>" in page
    for name in s["scores"]:
        assert f"<td>{name}" in page
    if max(abs(s["relevance_total"]), abs(s["absorbed"])) <= 10 * abs(s["score"]):
        share = s["relevance_total"] / s["score"]
        said = r"The heatmap (?:accounts for|adds up to) (−?[\d.]+) % of the score"
        shown = re.search(said, page)
        assert shown, "no sentence with the share of the score the heatmap shows"
        assert float(shown.group(1).replace("−", "-")) == pytest.approx(100 * share, abs=0.51)
    else:
        assert "too close to 0 for a percentage" in page
    assert f"{round(100 * s['absorbed_mass'])} % of it was held back (the absorbed mass)" in page


def test_report_shows_the_most_relevant_frames_at_640_px(explained):
    _, out, _ = explained
    page = _page(out)
    s = json.loads((out / "summary.json").read_text())
    figures = re.findall(
        r'<figure data-seek="(\d+)"[^>]*><img [^>]*src="data:image/jpeg;base64,([^"]+)"', page
    )
    assert [int(t) for t, _ in figures] == s["top_frames"][:4]
    for _, data in figures:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[1] == 640  # the clip is 160 px wide: upsampled
    for name in ("HOF", "MBHx", "MBHy"):
        assert f'alt="{name} on frame {s["top_frames"][0]}"' in page


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
    assert summary["rule"] == get_rule().summary()  # the same default as for one clip
    assert summary["rule"]["name"] == "fine"
    assert set(summary["feature_shares"]) == {"pushups", "walk"}
    for row in summary["clips"]:
        assert 0.0 <= row["mass_on_actor"] <= row["mass_near_actor"] <= 1.0
        assert row["pointing_game"] in (0.0, 1.0)
        assert 0.0 <= row["top_frames_in_interval"] <= 1.0
    page = (tmp_path / "ds" / "report.html").read_text()
    assert "feature shares by class" in page and "data:image/png;base64," in page
    assert rule_text(summary["rule"]) in page
    assert "× the clip's mean |Ψ|, through the histogram bins" in page
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
    assert {k: printed["rule"][k] for k in ("name", "epsilon", "histogram", "root")} == {
        "name": "paper",
        "epsilon": 0.5,
        "histogram": "flat",
        "root": "zero",
    }
    assert printed["rule"]["epsilon_unit"] == "relative"
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
