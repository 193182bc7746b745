"""Cached dataset-scale extraction: `actionlrp.extraction.extract_descriptors`."""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from test_datasets import place

from actionlrp import workers
from actionlrp.datasets import Clip
from actionlrp.descriptors import FEATURE_TYPES, DescriptorParams, describe
from actionlrp.extraction import ExtractionResult, extract_descriptors
from actionlrp.motion import motion_field

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
    params = DescriptorParams(hog=False, normalization="l2")
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
        raise AssertionError("a clip was read although every clip is cached")

    monkeypatch.setattr(workers, "described_motion_field", no_extraction)
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
    real = workers.described_motion_field

    def flaky(path, *args, **kwargs):
        if str(path).endswith(".avi"):
            raise RuntimeError("boom\nsecond line")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(workers, "described_motion_field", flaky)
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
    import actionlrp.workers as workers

    real = workers.described_motion_field

    def crashing(path, *args, **kwargs):
        if str(path) == killer:
            os._exit(1)  # what a segfault in the decoder looks like from the parent
        return real(path, *args, **kwargs)

    workers.described_motion_field = crashing
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
    monkeypatch.setattr(workers, "_process_context", lambda: multiprocessing.get_context("spawn"))
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

    monkeypatch.setattr(workers, "ProcessPoolExecutor", BreaksOnce)
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
        ({"params": DescriptorParams(hog=False, cube_px=(20,))}, "cube_px 20"),
        ({"params": DescriptorParams(hog=False, normalization="max")}, "normalization"),
        ({"n_jobs": 0}, "n_jobs must be"),
    ],
)
def test_bad_arguments_raise_before_any_clip_is_read(kwargs, message, tmp_path, monkeypatch):
    read = lambda *a, **k: pytest.fail("clip was read")  # noqa: E731
    monkeypatch.setattr(workers, "described_motion_field", read)
    with pytest.raises(ValueError, match=message):
        extract_descriptors([tmp_path / "x.mp4"], cache=False, **kwargs)


def test_a_single_path_is_not_taken_for_a_list_of_clips(good):
    with pytest.raises(ValueError, match="not one path"):
        extract_descriptors(str(good[0]))
