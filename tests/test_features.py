"""Training Fisher vectors on disk: written by rows, read by column blocks, the same SVM."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import motion_model

from actionlrp import features
from actionlrp.classifier import LinearClassifier
from actionlrp.features import BLOCK_COLUMNS, DiskMatrix, column_blocks, feature_matrix


def test_rows_written_any_way_read_back_by_column_blocks(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 2 * BLOCK_COLUMNS + 100)).astype(np.float32)
    m = DiskMatrix(x.shape, tmp_path)
    m[0:3] = x[:3]
    m[3] = x[3]
    m[4:] = x[4:]
    blocks = list(column_blocks(m))
    assert [(s, b.shape) for s, b in blocks] == [
        (0, (7, BLOCK_COLUMNS)),
        (BLOCK_COLUMNS, (7, BLOCK_COLUMNS)),
        (2 * BLOCK_COLUMNS, (7, 100)),
    ]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks], axis=1), x)
    assert m.path.stat().st_size == x.nbytes
    m.close()
    assert not m.path.exists()


def test_the_svm_of_a_disk_matrix_is_that_of_the_array():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, BLOCK_COLUMNS + 7)).astype(np.float32)
    y = np.array(["a", "b", "c"] * 10)
    m = DiskMatrix(x.shape)
    m[:] = x
    on_disk, in_memory = LinearClassifier().fit(m, y), LinearClassifier().fit(x, y)
    np.testing.assert_array_equal(on_disk.coef_, in_memory.coef_)
    np.testing.assert_array_equal(on_disk.intercept_, in_memory.intercept_)
    x[5, 9] = np.nan
    m[5] = x[5]
    with pytest.raises(ValueError, match="NaN or infinity"):
        LinearClassifier(C=1.0).fit(m, y)
    m.close()


def test_only_a_training_set_too_large_for_memory_goes_to_disk(monkeypatch):
    assert isinstance(feature_matrix(10, 100), np.ndarray)
    monkeypatch.setattr(features, "IN_MEMORY_BYTES", 10 * 100 * 4 - 1)
    on_disk = feature_matrix(10, 100)
    assert isinstance(on_disk, DiskMatrix)
    on_disk.close()


def test_a_model_trained_through_the_disk_is_the_same_and_leaves_no_file(
    monkeypatch, tmp_path, right_down_fields
):
    from actionlrp.descriptors import describe

    fields, labels = right_down_fields
    desc = [describe(f) for f in fields]
    expected = motion_model(2).fit_descriptors(desc, labels)
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setenv("TMPDIR", str(spill))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setattr(features, "IN_MEMORY_BYTES", 0)
    made = []
    original = DiskMatrix.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self.path)

    monkeypatch.setattr(DiskMatrix, "__init__", recording)
    got = motion_model(2).fit_descriptors(desc, labels)
    assert made and made[0].parent == spill
    assert not any(spill.iterdir())
    np.testing.assert_array_equal(got.classifier_.coef_, expected.classifier_.coef_)


def test_no_room_for_the_file_is_one_line_naming_it_and_leaves_nothing(monkeypatch, tmp_path):
    import errno
    import os

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError) as caught:
        DiskMatrix((1000, 1000), tmp_path)
    message = caught.value.strerror
    assert message.startswith(str(tmp_path)) and "no room for the Fisher vectors" in message
    assert "\n" not in message and "No space left on device" in message
    assert not any(tmp_path.iterdir())
