"""The command line: JSON output, files written, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from actionlrp.descriptors import load_descriptors


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "actionlrp.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_motion_json_has_the_documented_keys(square_clips):
    result = run("motion", str(square_clips["libx264", 0].path), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {
        "codec",
        "container",
        "width",
        "height",
        "fps",
        "frames",
        "frames_with_vectors",
        "mean_flow",
        "seconds",
    }
    assert data["codec"] == "h264" and (data["width"], data["height"]) == (160, 120)
    assert data["frames"] == 40 and data["frames_with_vectors"] == 39
    assert data["mean_flow"][0] > 0.05 and abs(data["mean_flow"][1]) < 0.02


def test_motion_with_flow_reference(square_clips):
    result = run("motion", str(square_clips["mpeg4", 0].path), "--motion", "flow", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["frames"] == 40 and data["mean_flow"][0] > 0.05


def test_features_writes_descriptors(square_clips, tmp_path):
    out = tmp_path / "desc.npz"
    result = run("features", str(square_clips["libx264", 0].path), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dims"] == {"hof": 108, "mbhx": 96, "mbhy": 96, "hog": 96}
    motion = run("features", str(square_clips["libx264", 0].path), "--no-hog", "--json")
    assert json.loads(motion.stdout)["dims"] == {"hof": 108, "mbhx": 96, "mbhy": 96}
    desc = load_descriptors(out)
    assert len(desc) == data["cubes"] > 0
    assert np.isfinite(desc.features["hof"]).all()


def test_features_with_hog_gives_a_fourth_feature_type(square_clips):
    result = run("features", str(square_clips["mpeg4", 0].path), "--hog", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dims"] == {"hof": 108, "mbhx": 96, "mbhy": 96, "hog": 96}


@pytest.mark.parametrize("command", ["train", "cv", "extract"])
def test_hog_is_a_descriptor_option_of_every_command_that_describes(command):
    """(``evaluate``, ``predict`` and ``explain`` describe as their model says.)"""
    from actionlrp.cli import build_parser
    from actionlrp.cli_commands import _descriptor_params

    argv = {"train": ["d", "--out", "m"], "cv": ["d"], "extract": ["d", "--out", "s"]}[command]
    args = build_parser().parse_args([command, *argv, "--hog"])
    assert _descriptor_params(args).hog


def test_plain_output_is_readable(square_clips):
    result = run("motion", str(square_clips["libx264", 0].path))
    assert result.returncode == 0
    assert "frames_with_vectors" in result.stdout and "{" not in result.stdout.splitlines()[0]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, square_clips, clip_dir):
    import av

    folder = tmp_path_factory.mktemp("bad")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("not a video\n" * 50)
    src = square_clips["libx264", 0].path.read_bytes()
    (folder / "truncated.mp4").write_bytes(src[: len(src) // 3])
    mjpeg = folder / "clip_mjpeg.avi"
    with av.open(str(mjpeg), "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for i in range(5):
            img = np.full((48, 64, 3), 40 * i, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    (folder / "a_directory.mp4").mkdir()
    return folder


@pytest.mark.parametrize(
    "name,reason",
    [
        ("missing.mp4", "no such file"),
        ("empty.mp4", "empty file"),
        ("text.mp4", "not a readable video"),
        ("truncated.mp4", "truncated.mp4"),
        ("clip_mjpeg.avi", "MJPEG exports no motion vectors; re-run with --transcode"),
        ("a_directory.mp4", "is a directory"),
    ],
)
@pytest.mark.parametrize("command", ["motion", "features"])
def test_bad_input_gives_one_line_and_exit_code_2(bad_inputs, name, reason, command):
    path = bad_inputs / name
    result = run(command, str(path), "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and reason in lines[0]
    assert "Traceback" not in result.stderr


def test_transcode_option_reads_a_codec_without_vectors(bad_inputs):
    result = run("motion", str(bad_inputs / "clip_mjpeg.avi"), "--transcode", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["codec"] == "mjpeg->mpeg4"


def test_failed_features_leave_no_partial_file(bad_inputs, tmp_path):
    out = tmp_path / "never.npz"
    result = run("features", str(bad_inputs / "text.mp4"), "--out", str(out))
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_usage_error_exits_2():
    result = run("motion")
    assert result.returncode == 2
    assert "usage" in result.stderr


_EXPLAIN = ["explain", "v.mp4", "--model", "m", "--out", "o"]
_DATASET = ["explain-dataset", "d", "--model", "m", "--out", "o"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (_EXPLAIN, ("fine", 0.01)),  # one default for both commands
        (_DATASET, ("fine", 0.01)),
        ([*_EXPLAIN, "--rule", "paper"], ("paper", 1.0)),
        ([*_DATASET, "--rule", "fine-zero", "--epsilon", "0.1"], ("fine-zero", 0.1)),
    ],
)
def test_both_explain_commands_take_a_named_rule(argv, expected):
    from actionlrp.cli import build_parser
    from actionlrp.cli_commands import _rule

    rule = _rule(build_parser().parse_args(argv))
    assert (rule.name, rule.epsilon) == expected


def test_an_unknown_rule_is_a_usage_error(capsys):
    from actionlrp.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([*_EXPLAIN, "--rule", "lrp"])
    assert exit_.value.code == 2
    assert "invalid choice: 'lrp'" in capsys.readouterr().err


@pytest.mark.parametrize("preset, expected", [(None, "4"), ("12", "12")])
def test_importing_actionlrp_first_lets_openblas_threads_sleep_at_once(preset, expected):
    # Set before numpy is loaded (OpenBLAS reads it then), unless the user set it already.
    code = (
        "import os, sys; import actionlrp; "
        "print('numpy' in sys.modules, os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["False", expected], done.stderr
