"""The Examples sections of the public entry points run as written (doctest), on real clips."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "actionlrp",
    "actionlrp.rules",
    "actionlrp.codec",
    "actionlrp.descriptors",
    "actionlrp.model",
    "actionlrp.pages",
]


@pytest.fixture(scope="module")
def globs(tmp_path_factory):
    """The names the examples use: a built-in dataset of 2 classes, a model trained on it, a
    clip of its test split (H.264) and a scratch folder."""
    from actionlrp.builtin import make_dataset
    from actionlrp.datasets import load_split
    from actionlrp.model import ActionModel

    tmp = tmp_path_factory.mktemp("examples")
    data = tmp / "data"
    make_dataset(data, classes=2, clips_per_class=3, width=160, height=120)
    split = load_split(data)
    model = ActionModel(n_components=4, pca_dims=8, n_jobs=1, progress=False)
    model.fit([c.path for c in split.train], [c.label for c in split.train])
    clip = next(c.path for c in split.test if c.path.suffix == ".mp4")
    return {"data": data, "model_file": model.save(tmp / "m.npz"), "clip": clip, "tmp": tmp}


@pytest.mark.parametrize("name", MODULES)
def test_examples_run_as_written(name, globs):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs=dict(globs), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
