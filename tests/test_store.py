"""The feature store: resumable, atomic, safe for concurrent runs, the same on a Dask cluster."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from actionlrp import cli, extraction
from actionlrp import entries as entries_module
from actionlrp.atomic import HOST, atomic_file, write_text_atomic
from actionlrp.builtin import make_dataset
from actionlrp.descriptors import FEATURE_TYPES, DescriptorParams, describe
from actionlrp.entries import ExtractionSpec, entry_info, read_entry
from actionlrp.errors import EmptyClipError, StoreError
from actionlrp.extraction import extract_descriptors, extract_to_store
from actionlrp.model import ActionModel, evaluate_clips
from actionlrp.motion import motion_field
from actionlrp.store import FeatureStore
from actionlrp.synthetic import moving_square_clip

SMALL = {"width": 128, "height": 96, "n_frames": 40}
MODEL = {"n_components": 4, "pca_dims": 8, "progress": False}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """12 real clips (2 classes, H.264 and MPEG-4 Part 2) and one text file named .mp4."""
    root = tmp_path_factory.mktemp("store_data") / "data"
    make_dataset(root, classes=2, clips_per_class=6, seed=3, **SMALL)
    (root / "train" / "pushups" / "broken.mp4").write_text("not a video\n")
    return root


def clips_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".mp4", ".avi"))


def entries(store: Path) -> dict[str, Path]:
    return {
        p.relative_to(store).as_posix()[: -len(".npz")]: p
        for p in store.rglob("*.npz")
        if not p.name.startswith(".")
    }


def temporaries(store: Path) -> list[Path]:
    return [p for p in store.rglob(".*") if ".tmp" in p.name]


def assert_complete(store: Path, root: Path, spec: ExtractionSpec) -> None:
    """Every readable clip has a whole entry of its current content; the text file failed."""
    found = entries(store)
    opened = FeatureStore.open(store)
    good = [p for p in clips_of(root) if p.name != "broken.mp4"]
    assert sorted(found) == sorted(p.relative_to(root).as_posix() for p in good)
    for path in good:
        entry = found[path.relative_to(root).as_posix()]
        assert opened.done(path, entry) is not None
        assert read_entry(entry, spec.params, transcode=False) is not None
    manifest = opened.manifest()
    assert {k for k, r in manifest.items() if r["status"] == "done"} == set(found)
    assert manifest["train/pushups/broken.mp4"]["status"] == "failed"
    assert "not a readable video" in manifest["train/pushups/broken.mp4"]["error"]
    assert temporaries(store) == []


def run_cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "actionlrp.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def local_store(data, tmp_path_factory) -> Path:
    """The store of one process, the reference."""
    out = tmp_path_factory.mktemp("local") / "store"
    store = FeatureStore.create(out, data, ExtractionSpec())
    run = extract_to_store(clips_of(data), store, n_jobs=1, progress=False)
    assert run.n_written == 12 and len(run.failures) == 1
    return out


def test_cluster_of_two_workers_gives_the_single_process_result(data, local_store, tmp_path):
    from distributed import LocalCluster

    from actionlrp.cluster import close_clients

    out = tmp_path / "store"
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        try:
            code = cli.main(["extract", str(data), "--out", str(out), "--scheduler", address])
            assert code == 1  # partly done: the text file failed on a worker, and was recorded
            assert_complete(out, data, ExtractionSpec())
            spec = ExtractionSpec()
            for name, entry in entries(local_store).items():
                mine = read_entry(entry, spec.params, False)
                theirs = read_entry(out / f"{name}.npz", spec.params, False)
                assert mine[1] == theirs[1]
                np.testing.assert_array_equal(mine[0].boxes, theirs[0].boxes)
                for f in FEATURE_TYPES:
                    np.testing.assert_array_equal(mine[0].features[f], theirs[0].features[f])
            # Training and evaluation through the stores: encoding on the cluster or here.
            here = FeatureStore.open(local_store)
            split = here.split()
            labels = [c.label for c in split.train]
            alone = ActionModel(**MODEL, store=here).fit([c.path for c in split.train], labels)
            there = ActionModel(**MODEL, store=FeatureStore.open(out), scheduler=address)
            there.fit([c.path for c in split.train], labels)
            for key, value in alone.encoder_.get_state().items():
                np.testing.assert_array_equal(value, there.encoder_.get_state()[key])
            test = [c.path for c in split.test]
            np.testing.assert_array_equal(
                alone.decision_function(test), there.decision_function(test)
            )
            assert evaluate_clips(there, split.test)["accuracy"] == 1.0
        finally:
            close_clients()


def test_a_run_killed_midway_resumes_to_a_complete_store_without_redoing_clips(data, tmp_path):
    out = tmp_path / "store"
    args = ["extract", data, "--out", out, "--motion", "flow", "--workers", "2", "--json"]
    first = run_cli(*args, start_new_session=True)
    deadline = time.monotonic() + 60
    manifest = out / "manifest.jsonl"
    while time.monotonic() < deadline and first.poll() is None:
        if manifest.is_file() and manifest.read_text().count('"done"') >= 2:
            break
        time.sleep(0.01)
    assert first.poll() is None, "the run ended before it could be killed"
    os.killpg(first.pid, signal.SIGKILL)  # the client and its worker processes
    first.wait()
    before = {name: p.stat().st_mtime_ns for name, p in entries(out).items()}
    assert 2 <= len(before) < 12
    spec = FeatureStore.open(out).spec
    for entry in entries(out).values():  # what the kill left is whole
        assert read_entry(entry, spec.params, transcode=False) is not None
    second = run_cli(*args)
    stdout, stderr = second.communicate(timeout=120)
    assert second.returncode == 1, stderr
    report = json.loads(stdout)
    assert report["n_skipped"] == len(before)
    assert report["n_written"] == 12 - len(before)
    assert {n: entries(out)[n].stat().st_mtime_ns for n in before} == before
    assert_complete(out, data, spec)
    clip = data / "test" / "walk" / "walk_005.avi"
    direct = describe(motion_field(clip, "flow"), DescriptorParams(hog=False))
    stored = read_entry(out / "test/walk/walk_005.avi.npz", spec.params, False)[0]
    for f in FEATURE_TYPES:
        np.testing.assert_allclose(stored.features[f], direct.features[f], rtol=0, atol=1e-6)


def test_two_runs_at_once_on_one_store_leave_it_complete(data, tmp_path):
    out = tmp_path / "store"
    args = ["extract", data, "--out", out, "--workers", "1", "--json"]
    runs = [run_cli(*args), run_cli(*args)]
    for run in runs:
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == 1, stderr
        assert json.loads(stdout)["n_failed"] == 1
    assert_complete(out, data, ExtractionSpec())
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert all(json.loads(line)["clip"] for line in lines)  # no interleaved line


def test_a_full_disk_stops_the_run_naming_the_file_and_leaves_no_partial_entry(
    data, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "store"

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(entries_module.os, "fsync", no_space)  # the entry's bytes are written
    code = cli.main(["extract", str(data), "--out", str(out), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    first = out / "train/pushups/pushups_000.mp4.npz"  # the first clip after broken.mp4
    assert err.startswith(f"actionlrp: {first}: cannot write (No space left on device)")
    assert entries(out) == {} and temporaries(out) == []
    assert [r["status"] for r in FeatureStore.open(out).manifest().values()] == ["failed"]
    monkeypatch.undo()
    assert cli.main(["extract", str(data), "--out", str(out), "--workers", "1"]) == 1
    assert_complete(out, data, ExtractionSpec())


def test_the_cache_is_a_store_named_by_key(data, tmp_path):
    path = clips_of(data)[0]
    result = extract_descriptors([path], cache_dir=tmp_path, n_jobs=1, progress=False)
    (entry,) = (tmp_path / "descriptors").glob("*.npz")
    info = entry_info(entry)
    assert info.key == entry.stem == ExtractionSpec().key(entries_module.file_sha256(path))
    assert info.n_cubes == len(result.descriptors[0]) and info.source_size == path.stat().st_size
    assert FeatureStore(tmp_path / "descriptors", ExtractionSpec(), by="key").done(path, entry)


def test_a_stores_entries_are_deflated_and_the_caches_are_not(data, local_store, tmp_path):
    import zipfile

    extract_descriptors([clips_of(data)[0]], cache_dir=tmp_path, n_jobs=1, progress=False)
    (cached,) = (tmp_path / "descriptors").glob("*.npz")
    stored = entries(local_store)[clips_of(data)[0].relative_to(data).as_posix()]
    kinds = {}
    for name, path in (("cache", cached), ("store", stored)):
        with zipfile.ZipFile(path) as archive:
            kinds[name] = {i.compress_type for i in archive.infolist() if i.filename == "hof.npy"}
    assert kinds == {"cache": {zipfile.ZIP_STORED}, "store": {zipfile.ZIP_DEFLATED}}
    cached_desc = read_entry(cached, ExtractionSpec().params, False)[0]
    stored_desc = read_entry(stored, ExtractionSpec().params, False)[0]
    for f in cached_desc.features:
        np.testing.assert_array_equal(cached_desc.features[f], stored_desc.features[f])


def test_a_store_of_other_parameters_is_refused(data, local_store, tmp_path):
    with pytest.raises(StoreError, match="other extraction parameters"):
        FeatureStore.create(local_store, data, ExtractionSpec(motion="flow"))
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(StoreError, match="not empty and not a feature store"):
        FeatureStore.create(tmp_path, data, ExtractionSpec())
    model = ActionModel(**MODEL, motion="flow", store=FeatureStore.open(local_store))
    with pytest.raises(StoreError, match="extracted with motion mv"):
        model.extract([clips_of(data)[0]])


def test_train_evaluate_and_cv_read_a_store_when_the_clips_are_gone(
    data, local_store, tmp_path, capsys
):
    copy = tmp_path / "store"
    shutil.copytree(local_store, copy)
    header = json.loads((copy / "store.json").read_text())
    header["dataset"] = str(tmp_path / "gone")  # as on a machine without the clips
    (copy / "store.json").write_text(json.dumps(header))
    model = tmp_path / "model.npz"
    fast = ["--k", "4", "--pca", "8", "--json"]
    assert cli.main(["train", str(copy), "--out", str(model), *fast]) == 1  # broken.mp4
    trained = json.loads(capsys.readouterr().out)
    assert trained["n_clips"] == 9 and trained["n_failed"] == 1
    assert cli.main(["evaluate", str(copy), "--model", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == 1.0
    assert cli.main(["cv", str(copy), "--folds", "2", *fast]) == 1
    assert json.loads(capsys.readouterr().out)["n_clips"] == 13


def test_errors_about_a_too_short_clip_name_it(data, local_store, tmp_path, capsys):
    short = moving_square_clip(tmp_path / "short.mp4", n_frames=8, width=96, height=72).path
    split = FeatureStore.open(local_store).split()
    model = ActionModel(**MODEL, store=FeatureStore.open(local_store)).fit(
        [c.path for c in split.train], [c.label for c in split.train]
    )
    model.store = None
    saved = model.save(tmp_path / "model.npz")
    for command in (["explain", str(short), "--out", str(tmp_path / "x")], ["predict", str(short)]):
        code = cli.main([*command, "--model", str(saved)])
        err = capsys.readouterr().err
        assert code == 2 and f"{short}: clip has no local descriptors" in err, err
    with pytest.raises(EmptyClipError, match=str(short)):
        model.decision_function([short])


def test_an_output_is_replaced_whole_or_left_as_it_was(tmp_path):
    target = tmp_path / "summary.json"
    write_text_atomic(target, "old")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), atomic_file(target) as tmp:
        tmp.write_text("half of the ne")
        raise Boom
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_stale_temporaries_of_dead_writers_are_removed(data, local_store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(local_store, copy)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = copy / "train" / f".x.npz~{HOST}~{dead.stdout.strip()}~abc.tmp.npz"
    live = copy / "train" / f".y.npz~{HOST}~{os.getpid()}~abc.tmp.npz"
    stale.write_bytes(b"PK")
    live.write_bytes(b"PK")
    assert FeatureStore.open(copy).clean_temporaries() == 1
    assert not stale.exists() and live.exists()


def test_extraction_spec_round_trips_through_json():
    spec = ExtractionSpec(
        "flow", 16, DescriptorParams(hog=False, cube_px=(32, 48), max_width=320), True
    )
    assert ExtractionSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert extraction.CACHE_FORMAT == entries_module.ENTRY_FORMAT


def test_hog_entries_are_keyed_apart_and_entries_made_before_hog_keep_their_key():
    import hashlib
    from dataclasses import asdict

    from actionlrp import __version__

    off = ExtractionSpec(params=DescriptorParams(hog=False))
    on = ExtractionSpec()  # HOG is the default
    assert off.key("c") != on.key("c")
    assert on.key("c") != ExtractionSpec(params=DescriptorParams(hog=True, hog_floor=0)).key("c")
    params = asdict(DescriptorParams(hog=False))
    del params["hog"], params["hog_floor"]  # what the key read before HOG existed
    before = {
        "format": entries_module.ENTRY_FORMAT,
        "actionlrp": __version__,
        "content": "c",
        "motion": "mv",
        "cell": 8,
        "params": params,
    }
    assert off.key("c") == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    old = {"motion": "mv", "cell": 8, "params": params}  # a store's spec written before HOG
    assert ExtractionSpec.from_json(old) == off


def test_extract_with_hog_writes_a_fourth_feature_type_that_train_reads(data, tmp_path, capsys):
    out = tmp_path / "store"
    assert cli.main(["extract", str(data), "--out", str(out), "--workers", "1", "--hog"]) == 1
    params = FeatureStore.open(out).spec.params
    assert params == DescriptorParams(hog=True)
    clip = clips_of(data)[0]
    mine = read_entry(entries(out)[clip.relative_to(data).as_posix()], params, False)[0]
    assert list(mine.features) == [*FEATURE_TYPES, "hog"]
    expected = describe(motion_field(clip, hog=True), params)
    np.testing.assert_array_equal(mine.features["hog"], expected.features["hog"])
    model = tmp_path / "model.npz"
    assert cli.main(["train", str(out), "--out", str(model), "--k", "4", "--pca", "8"]) == 1
    loaded = ActionModel.load(model)
    assert loaded.params_.hog and loaded.encoder_.feature_types == (*FEATURE_TYPES, "hog")
    capsys.readouterr()


def test_train_with_the_pyramid_and_explain_its_cells(data, local_store, tmp_path, capsys):
    model = tmp_path / "pyramid.npz"
    options = ["--k", "4", "--pca", "8", "--pyramid"]
    assert cli.main(["train", str(local_store), "--out", str(model), *options]) == 1
    loaded = ActionModel.load(model)
    assert loaded.pyramid and loaded.encoder_.n_channels_ == 24
    clip = [p for p in clips_of(data) if p.name != "broken.mp4"][0]
    capsys.readouterr()
    out = tmp_path / "explained"
    assert cli.main(["explain", str(clip), "--model", str(model), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["pyramid_relevance"]) == 24
    assert sum(summary["pyramid_relevance"].values()) == pytest.approx(summary["score"])
    assert "pyramid cell 2x2x1 (0,0,0)" in (out / "report.html").read_text()


def test_a_model_file_that_cannot_be_written_is_one_line_naming_it(
    data, local_store, tmp_path, monkeypatch, capsys
):
    import numpy

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(numpy, "savez", full)
    out = tmp_path / "model.npz"
    code = cli.main(["train", str(local_store), "--out", str(out), "--k", "4", "--pca", "8"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err[-1] == f"actionlrp: {out}: No space left on device"
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Encoding in local worker processes; extract's descriptor options


def test_two_local_encoding_workers_give_the_single_process_rows_bit_for_bit(data, local_store):
    from actionlrp.encoding import _batches, transform
    from actionlrp.fisher import FisherEncoder

    store = FeatureStore.open(local_store)
    split = store.split()
    read = store.read([c.path for c in split.train + split.test]).descriptors
    stored = read.take(i for i, n in enumerate(read.sizes) if n)  # not broken.mp4
    types = (*FEATURE_TYPES, "hog")  # the store's descriptors: the defaults
    encoder = FisherEncoder(n_components=4, pca_dims=8, max_samples=5000, feature_types=types)
    encoder.fit(stored)
    alone = encoder.transform(stored)
    assert len(_batches(stored.sizes, 2)) >= 4  # rows may come back out of order
    for descriptors in (stored, list(stored)):  # entries read by the workers, or sent to them
        two = transform(encoder, descriptors, n_jobs=2, min_work=0)
        assert two.dtype == np.float32
        np.testing.assert_array_equal(two, alone)
    empty = list(stored)
    empty[3] = describe(motion_field(clips_of(data)[0], hog=True), DescriptorParams(cube_px=(512,)))
    with pytest.raises(EmptyClipError, match=r"descriptors\[3\]"):
        transform(encoder, empty, n_jobs=2, min_work=0)


def test_train_with_two_jobs_writes_the_model_of_one(data, local_store, tmp_path, monkeypatch):
    from actionlrp import encoding

    monkeypatch.setattr(encoding, "MIN_PARALLEL_WORK", 0)  # these clips are worth the workers
    fast = ["--k", "4", "--pca", "8", "--json"]
    models = []
    for jobs in (1, 2):
        out = tmp_path / f"model-{jobs}.npz"
        assert cli.main(["train", str(local_store), "--out", str(out), "--jobs", str(jobs), *fast])
        models.append(ActionModel.load(out))
    one, two = models
    for key, value in one.classifier_.get_state().items():
        np.testing.assert_array_equal(value, two.classifier_.get_state()[key])


def test_extract_takes_the_descriptor_options_of_the_model(data, tmp_path, capsys):
    out = tmp_path / "store"
    options = ["--cube-px", "32", "48", "--stride-px", "16", "24", "--slice-normalization"]
    assert cli.main(["extract", str(data), "--out", str(out), "--workers", "1", *options]) == 1
    params = FeatureStore.open(out).spec.params
    assert params == DescriptorParams(
        cube_px=(32, 48), stride_px=(16, 24), slice_normalization=True
    )
    clip = clips_of(data)[0]
    mine = read_entry(entries(out)[clip.relative_to(data).as_posix()], params, False)[0]
    np.testing.assert_array_equal(mine.boxes, describe(motion_field(clip, hog=True), params).boxes)
    model = tmp_path / "model.npz"
    assert cli.main(["train", str(out), "--out", str(model), "--k", "4", "--pca", "8"]) == 1
    assert ActionModel.load(model).params_ == params
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert cli.main(["extract", str(data), "--out", str(bad), "--cube-px", "36"]) == 2
    assert capsys.readouterr().err.startswith("actionlrp: --cube-px / --stride-px: cube_px 36")
    assert not bad.exists()


def test_lazy_extraction_leaves_the_descriptors_in_the_cache_until_read(data, tmp_path):
    from actionlrp.store import StoredDescriptors

    good = [p for p in clips_of(data) if p.name != "broken.mp4"][:3] + [
        data / "train" / "pushups" / "broken.mp4"
    ]
    plain = extract_descriptors(good, cache=False, n_jobs=1, progress=False)
    for n_jobs in (1, 2, 1):  # computed here, computed by workers, then read from the cache
        cache = tmp_path / ("cache" if n_jobs == 1 else "cache-2")
        lazy = extract_descriptors(good, cache_dir=cache, n_jobs=n_jobs, lazy=True, progress=False)
        assert isinstance(lazy.descriptors, StoredDescriptors)
        assert lazy.descriptors.files[3] is None and len(lazy.failures) == 1
        assert lazy.n_frames == plain.n_frames
        for mine, theirs in zip(lazy.descriptors, plain.descriptors, strict=True):
            assert (mine is None) == (theirs is None)
            if mine is not None:
                np.testing.assert_array_equal(mine.features["hof"], theirs.features["hof"])
    assert lazy.from_cache == (True, True, True, False)
