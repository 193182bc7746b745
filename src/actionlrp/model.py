"""The whole recogniser as one estimator: motion field → descriptors → Fisher vector → linear SVM.

A model file is a single ``.npz`` holding only numeric arrays plus one JSON document (stored as
bytes) with the parameters, the class names, the library versions, a format version and a
SHA-256 checksum of every array. It is read with ``allow_pickle=False``: loading a model cannot
run code. A truncated, tampered-with or foreign file is refused with a `ModelFileError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actionlrp import __version__, datasets
from actionlrp.atomic import atomic_file
from actionlrp.classifier import LinearClassifier, evaluate_scores
from actionlrp.datasets import Clip, group_kfold, hmdb51_split
from actionlrp.descriptors import DescriptorParams, LocalDescriptors
from actionlrp.descriptors_lrp import HistogramLayer
from actionlrp.encoding import transform
from actionlrp.errors import DatasetError, EmptyClipError, ModelFileError, VideoError
from actionlrp.extraction import ExtractionResult, extract_descriptors
from actionlrp.features import DiskMatrix, feature_matrix
from actionlrp.fisher import FisherEncoder
from actionlrp.pyramid import KL_GRIDS
from actionlrp.store import kept_indices, take

if TYPE_CHECKING:
    from actionlrp.relevance import Explanation
    from actionlrp.rules import Rule

FORMAT = "actionlrp-model"
FORMAT_VERSION = 1
_META = "__meta__"


class ActionModel:
    """Action recogniser on compressed video (Kantorov & Laptev 2014), explainable by LRP.

    Parameters
    ----------
    motion : {"mv", "flow"}
        Motion vectors from the bitstream, or the Farnebäck pixel-domain reference.
    cell : int
        Motion-field grid cell in pixels.
    descriptor_params : DescriptorParams, optional
        Cube geometry and descriptor normalisation.
    n_components : int
        Gaussians per feature type in the Fisher vector's GMM (K, default 256 as in the paper).
    pca_dims : int or None
        PCA dimensions per feature type before the GMM (None: no PCA). The default 48 is about
        half of HOF's 108 and MBH's 96 dims, as in Kantorov & Laptev and Perronnin et al.: as
        accurate as no PCA on fight-dev (benchmarks/bench_fight_dev.py), and it halves the GMM
        fit and the encoding.
    max_samples : int
        Descriptors sampled (uniformly over all training clips) to fit PCA and GMM. The GMM fit
        is most of the training time; 50 000 is ~200 per Gaussian at K = 256.
    pyramid : bool
        Encode a Fisher vector per cell of Kantorov & Laptev's space-time pyramid
        (`pyramid.KL_GRIDS`: 24 channels, D 24 × as long) instead of one for the whole clip.
    C : float or None
        SVM regularisation; None chooses it by cross-validation on the training set.
    random_state : int
    n_jobs : int
        Processes for feature extraction and Fisher-vector encoding (1: this one; -1: a
        process per core). Encoding a batch of clips worth less than a second stays here.
    cache_dir : path-like or None
        Descriptor cache (None: the default cache folder).
    progress : bool
        Show a progress bar on a terminal.
    transcode : bool
        Re-encode clips whose codec has no motion vectors.
    store : FeatureStore or path-like, optional
        Read the clips' descriptors from this feature store (``actionlrp extract``) instead of
        extracting them; its extraction parameters must be the model's.
    scheduler : str, optional
        With a store: a Dask scheduler's address; the cluster encodes the Fisher vectors.

    Examples
    --------
    >>> from actionlrp.datasets import load_split
    >>> split = load_split(data)  # the built-in dataset: data/train/<class>/…, data/test/<class>/…
    >>> model = ActionModel(n_components=4, pca_dims=8, n_jobs=1, progress=False)
    >>> model = model.fit([c.path for c in split.train], [c.label for c in split.train])
    >>> [str(c) for c in model.classes_]
    ['pushups', 'walk']
    >>> model.predict([c.path for c in split.test]).shape
    (2,)
    >>> ActionModel.load(model.save(tmp / "model.npz")).get_params() == model.get_params()
    True
    """

    def __init__(
        self,
        motion: str = "mv",
        cell: int = 8,
        descriptor_params: DescriptorParams | None = None,
        n_components: int = 256,
        pca_dims: int | None = 48,
        max_samples: int = 50_000,
        pyramid: bool = False,
        C: float | None = None,
        random_state: int = 0,
        n_jobs: int = 2,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
        transcode: bool = False,
        store=None,
        scheduler: str | None = None,
    ) -> None:
        self.motion = motion
        self.cell = cell
        self.descriptor_params = descriptor_params
        self.n_components = n_components
        self.pca_dims = pca_dims
        self.max_samples = max_samples
        self.pyramid = pyramid
        self.C = C
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.cache_dir = cache_dir
        self.progress = progress
        self.transcode = transcode
        self.store = store
        self.scheduler = scheduler

    # ----------------------------------------------------------------------------------------
    # Forward pass

    @property
    def params_(self) -> DescriptorParams:
        return self.descriptor_params or DescriptorParams()

    def extract(self, videos: Sequence[str | os.PathLike]) -> ExtractionResult:
        """Descriptors of each clip, left in the cache (or the store) and read one clip at a time
        when used (`StoredDescriptors`); bad clips listed in ``failures``."""
        if self.motion not in ("mv", "flow"):
            raise ValueError(f"motion must be 'mv' or 'flow', got {self.motion!r}")
        if self.store is not None:
            return _read_store(self, videos)
        return extract_descriptors(
            [Path(v) for v in videos],
            motion=self.motion,
            cell=self.cell,
            params=self.params_,
            cache_dir=self.cache_dir,
            n_jobs=self.n_jobs,
            progress=self.progress,
            transcode=self.transcode,
            lazy=True,  # one clip in memory at a time, read from the cache
        )

    def fit(self, videos: Sequence[str | os.PathLike], labels: Sequence[str]) -> ActionModel:
        """Extract, fit the GMMs and the SVM. Clips that fail to decode are left out."""
        if len(videos) != len(labels):
            raise ValueError(f"videos and labels differ in length: {len(videos)} != {len(labels)}")
        result = self.extract(videos)
        kept = kept_indices(result.descriptors)
        self.failures_ = result.failures
        if result.failures and len({str(labels[i]) for i in kept}) < 2:
            raise DatasetError(
                f"{len(result.failures)} of {len(videos)} training clips could not be read, too "
                f"few classes are left to train on; the first: {result.failures[0][1]}"
            )
        return self.fit_descriptors(take(result.descriptors, kept), [labels[i] for i in kept])

    def fit_descriptors(
        self, descriptors: Sequence[LocalDescriptors], labels: Sequence[str]
    ) -> ActionModel:
        """Fit on descriptors already extracted (with this model's motion and geometry)."""
        labels = [str(label) for label in labels]
        if len(descriptors) != len(labels):
            raise ValueError(
                f"descriptors and labels differ in length: {len(descriptors)} != {len(labels)}"
            )
        if len(set(labels)) < 2:
            raise ValueError(f"need at least 2 classes to train, got {sorted(set(labels))}")
        wanted = self.params_.dims()
        if isinstance(descriptors, list | tuple) and descriptors:
            missing = sorted(set(wanted) - set(descriptors[0].features))
            if missing:
                raise ValueError(
                    f"the descriptors have no {missing}, which descriptor_params asks for "
                    f"(HOG is on by default): describe fields read with hog=True, or pass "
                    f"descriptor_params=DescriptorParams(hog=False)"
                )
        start = time.perf_counter()
        self.encoder_ = FisherEncoder(
            n_components=self.n_components,
            pca_dims=self.pca_dims,
            max_samples=self.max_samples,
            feature_types=tuple(self.params_.dims()),
            pyramid=KL_GRIDS if self.pyramid else None,
            random_state=self.random_state,
        ).fit(descriptors)
        fitted = time.perf_counter()
        features = feature_matrix(len(descriptors), self.encoder_.fv_dim_)
        try:
            transform(self.encoder_, descriptors, self.n_jobs, out=features)
            encoded = time.perf_counter()
            self.classifier_ = LinearClassifier(C=self.C, random_state=self.random_state).fit(
                features, np.asarray(labels)
            )
        finally:
            if isinstance(features, DiskMatrix):
                features.close()
        self.classes_ = self.classifier_.classes_
        self.fit_seconds_ = {
            "gmm": fitted - start,
            "encode": encoded - fitted,
            "svm": time.perf_counter() - encoded,
        }
        return self

    def fisher_vectors(self, descriptors: Sequence[LocalDescriptors]) -> np.ndarray:
        """Normalised Fisher vectors Φ, shape (n_clips, D)."""
        self._check_fitted()
        return transform(self.encoder_, descriptors, self.n_jobs)

    def decision_function_descriptors(self, descriptors: Sequence[LocalDescriptors]) -> np.ndarray:
        """Per-class SVM scores f_c(x), shape (n_clips, n_classes)."""
        return self.classifier_.decision_function(self.fisher_vectors(descriptors))

    def decision_function(self, videos: Sequence[str | os.PathLike]) -> np.ndarray:
        """Per-class scores of each clip, shape (n_clips, n_classes); a bad clip raises."""
        result = self.extract(videos)
        if result.failures:
            raise VideoError(result.failures[0][1])
        kept = kept_indices(result.descriptors)
        if len(kept) < len(videos):
            empty = sorted(set(range(len(videos))) - set(kept))[0]
            raise EmptyClipError(f"{videos[empty]}: {EMPTY_CLIP}")
        return self.decision_function_descriptors(result.descriptors)

    def predict(self, videos: Sequence[str | os.PathLike]) -> np.ndarray:
        """Predicted class name of each clip."""
        scores = self.decision_function(videos)
        return self.classes_[scores.argmax(axis=1)]

    @property
    def layers_(self) -> tuple[HistogramLayer, FisherEncoder, LinearClassifier]:
        """The fitted layers in forward order: descriptors, Fisher vector (with PCA), SVM.

        Each has its forward step and its ``relevance(forward, r, rule)``; the relevance walk
        (`relevance.explain`) takes them in reverse.
        """
        self._check_fitted()
        return (HistogramLayer(self.params_), self.encoder_, self.classifier_)

    def explain(
        self,
        video: str | os.PathLike,
        class_name: str | None = None,
        rule: Rule | str | None = None,
        versus: str | None = None,
    ) -> Explanation:
        """Explain the score of one clip for one class (default: the predicted one).

        Parameters
        ----------
        video : path-like
            The clip.
        class_name : str, optional
            The class whose score is explained.
        rule : Rule or str, optional
            How relevance is handed down: a `Rule` or a preset's name (``"fine"``, ``"paper"``,
            ``"fine-zero"``); default the fine rule from no motion (`rules.DEFAULT_RULE`).
        versus : str, optional
            Explain f_c − f_versus instead: why ``class_name`` and not ``versus``.

        Returns
        -------
        Explanation
            Relevance at every layer, with the clip's file and motion field for its report
            (`pages.write_report`).

        Raises
        ------
        VideoError
            The clip cannot be read.
        EmptyClipError
            The clip is too short or too small for one cube.
        UnknownClassError
            ``class_name`` or ``versus`` is not one of the model's classes.
        ValueError
            ``rule`` names no preset.

        Examples
        --------
        >>> model = ActionModel.load(model_file)
        >>> explanation = model.explain(clip, rule="fine")
        >>> explanation.class_name in model.classes_
        True
        >>> bool(abs(explanation.relevance_fv.sum() - explanation.score) < 1e-9)
        True
        >>> explanation.relevance_voxels.shape == explanation.field.grid_shape
        True
        """
        from actionlrp.motion import motion_field
        from actionlrp.relevance import explain

        self._check_fitted()
        field = motion_field(
            video, self.motion, self.cell, transcode=self.transcode, hog=self.params_.hog
        )
        try:
            return explain(self, field, None, class_name, rule, versus=versus, video=video)
        except EmptyClipError as exc:
            raise EmptyClipError(f"{video}: {exc}") from None

    def _check_fitted(self) -> None:
        if not hasattr(self, "encoder_"):
            raise ValueError("this ActionModel is not fitted yet: call fit() or load() first")

    # ----------------------------------------------------------------------------------------
    # Model files

    def get_params(self) -> dict:
        """The constructor parameters as JSON-ready values."""
        params = {
            "motion": self.motion,
            "cell": self.cell,
            "descriptor_params": dataclasses.asdict(self.params_),
            "n_components": self.n_components,
            "pca_dims": self.pca_dims,
            "max_samples": self.max_samples,
            "pyramid": self.pyramid,
            "C": self.C,
            "random_state": self.random_state,
        }
        return params

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to ``path`` (``.npz``), atomically."""
        self._check_fitted()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        arrays = {f"encoder/{k}": np.asarray(v) for k, v in self.encoder_.get_state().items()}
        arrays.update(
            {f"classifier/{k}": np.asarray(v) for k, v in self.classifier_.get_state().items()}
        )
        for name, value in arrays.items():
            if value.dtype.hasobject:
                raise ModelFileError(f"{path}: array {name} holds Python objects; not saved")
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "encoder_params": self.encoder_.get_params(),
            "classifier_params": self.classifier_.get_params(),
            "classes": [str(c) for c in self.classes_],
            "versions": _versions(),
            "checksum": _checksum(arrays),
        }
        meta_bytes = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
        with atomic_file(path) as tmp:
            np.savez(tmp, **arrays, **{_META: meta_bytes})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ActionModel:
        """Read a model written by `save`; refuse anything else with a `ModelFileError`."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
        try:
            with np.load(path, allow_pickle=False) as data:
                names = list(data.files)
                if _META not in names:
                    raise ModelFileError(f"{path}: not an actionlrp model (no metadata)")
                meta = json.loads(bytes(data[_META]).decode())
                arrays = {name: data[name] for name in names if name != _META}
        except ModelFileError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, UnicodeDecodeError) as exc:
            raise ModelFileError(
                f"{path}: unreadable model file (truncated or corrupt: {type(exc).__name__})"
            ) from None
        if meta.get("format") != FORMAT:
            raise ModelFileError(f"{path}: not an actionlrp model")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelFileError(
                f"{path}: model format version {meta.get('format_version')} is not supported by "
                f"actionlrp {__version__} (expects {FORMAT_VERSION}); retrain the model"
            )
        if meta.get("checksum") != _checksum(arrays):
            raise ModelFileError(f"{path}: checksum mismatch: the file was altered or damaged")
        params = dict(meta["params"])
        # A model saved before `mbh_floor` existed was trained on plain RootSIFT MBH, and one
        # saved before HOG existed on motion alone.
        stored = {"mbh_floor": 0.0, "hog": False, **params["descriptor_params"]}
        params["descriptor_params"] = DescriptorParams(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
        )
        model = cls(**params)
        split = {"encoder": {}, "classifier": {}}
        for name, value in arrays.items():
            head, _, tail = name.partition("/")
            split[head][tail] = value
        model.encoder_ = FisherEncoder.from_state(meta["encoder_params"], split["encoder"])
        model.classifier_ = LinearClassifier.from_state(
            meta["classifier_params"], split["classifier"]
        )
        model.classes_ = model.classifier_.classes_
        model.versions_ = meta.get("versions", {})
        return model


EMPTY_CLIP = (
    "clip has no local descriptors (N = 0): too short or too small for one cube (15 frames, "
    "32×32 px by default), so it has no Fisher vector"
)


def _read_store(model: ActionModel, videos: Sequence[str | os.PathLike]) -> ExtractionResult:
    """The clips' descriptors from the model's store, which must match its parameters."""
    from actionlrp.cluster import connect
    from actionlrp.errors import StoreError
    from actionlrp.store import ExtractionSpec, FeatureStore

    store = model.store
    if not isinstance(store, FeatureStore):
        store = FeatureStore.open(store)
    spec = ExtractionSpec(model.motion, model.cell, model.params_, model.transcode)
    if (store.spec.motion, store.spec.cell, store.spec.params) != (
        spec.motion, spec.cell, spec.params
    ):
        raise StoreError(
            f"{store.root}: extracted with motion {store.spec.motion}, cell {store.spec.cell}, "
            f"{store.spec.params}; the model wants motion {spec.motion}, cell {spec.cell}, "
            f"{spec.params}"
        )
    client = connect(model.scheduler) if model.scheduler else None
    return store.read(videos, client)


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(name.encode())
        digest.update(str(value.dtype.str).encode())
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    import av
    import sklearn

    return {
        "actionlrp": __version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "av": av.__version__,
    }


# --------------------------------------------------------------------------------------------
# Evaluation protocols (what `actionlrp evaluate / cv / reproduce-hmdb51` print)


def evaluate_clips(model: ActionModel, clips: Sequence[Clip]) -> dict:
    """Accuracy, mean AP, per-class AP and confusion matrix of ``model`` on ``clips``.

    Clips that fail to decode are counted in ``n_failed`` and listed in ``failed``.
    """
    result = model.extract([c.path for c in clips])
    return _evaluate(model, clips, result.descriptors, [m for _, m in result.failures])


def _evaluate(
    model: ActionModel,
    clips: Sequence[Clip],
    descriptors: Sequence[LocalDescriptors | None],
    failed: list[str],
) -> dict:
    kept = kept_indices(descriptors)
    if not kept:
        raise DatasetError("no clip of the test set could be read")
    scores = model.decision_function_descriptors(take(descriptors, kept))
    truth = np.asarray([clips[i].label for i in kept])
    report = evaluate_scores(truth, scores, model.classes_)
    report["n_failed"] = len(clips) - len(kept)
    report["failed"] = list(failed)
    report["classes"] = [str(c) for c in model.classes_]
    return report


def cross_validate(
    clips: Sequence[Clip],
    n_folds: int = 5,
    groups: dict[str, str] | None = None,
    leave_one_group_out: bool = False,
    **params,
) -> dict:
    """Group-aware stratified k-fold cross-validation; descriptors are extracted once.

    With ``leave_one_group_out`` each group is the test set of one fold (``n_folds`` is then
    the number of groups), the protocol of datasets recorded as sequences (UT-Interaction).

    Returns the mean ``accuracy`` (and its ``accuracy_std`` over folds), ``mean_ap`` and
    ``per_class_ap`` over folds, ``n_clips``, ``n_failed``, ``extraction_seconds``,
    ``stage_seconds`` (where the time went, summed over folds: ``extraction`` of every clip
    once, then per fold ``gmm`` (sampling, PCA, EM), ``encode`` (the training clips' Fisher
    vectors), ``svm`` (choosing C and fitting) and ``test`` (encoding and scoring the held-out
    clips)) and ``folds`` (each fold's own report, with its ``test_group`` under
    leave-one-group-out).
    """
    clips = list(clips)
    if leave_one_group_out:
        folds = datasets.leave_one_group_out(clips, groups)
    else:
        seed = params.get("random_state", 0)
        folds = group_kfold(clips, n_folds=n_folds, groups=groups, seed=seed)
    result = ActionModel(**params).extract([c.path for c in clips])
    at = {c.path: i for i, c in enumerate(clips)}
    usable = set(kept_indices(result.descriptors))
    reports, unconverged = [], set()
    seconds = {"extraction": result.seconds, "gmm": 0.0, "encode": 0.0, "svm": 0.0, "test": 0.0}
    for split in folds:
        train = [c for c in split.train if at[c.path] in usable]
        fold_model = ActionModel(**params).fit_descriptors(
            take(result.descriptors, [at[c.path] for c in train]), [c.label for c in train]
        )
        for stage, value in fold_model.fit_seconds_.items():
            seconds[stage] += value
        test_descriptors = take(result.descriptors, [at[c.path] for c in split.test])
        start = time.perf_counter()
        reports.append(_evaluate(fold_model, split.test, test_descriptors, []))
        seconds["test"] += time.perf_counter() - start
        unconverged |= {f for f, ok in fold_model.encoder_.converged_.items() if not ok}
    per_class = {}
    for c in sorted({c.label for c in clips}):
        values = [r["per_class_ap"][c] for r in reports if r["per_class_ap"].get(c) is not None]
        per_class[c] = float(np.mean(values)) if values else None
    keys = ("accuracy", "mean_ap", "per_class_ap", "n_clips", "n_failed")
    fold_reports = [{k: r[k] for k in keys} for r in reports]
    if leave_one_group_out:
        for report, split in zip(fold_reports, folds, strict=True):
            report["test_group"] = split.test_group
    return {
        "accuracy": float(np.mean([r["accuracy"] for r in reports])),
        "accuracy_std": float(np.std([r["accuracy"] for r in reports])),
        "mean_ap": float(np.mean([r["mean_ap"] for r in reports])),
        "per_class_ap": per_class,
        "n_clips": len(clips),
        "n_failed": len(result.failures),
        "failed": [m for _, m in result.failures],
        "folds": fold_reports,
        "gmm_unconverged": sorted(unconverged),
        "extraction_seconds": round(result.seconds, 3),
        "stage_seconds": {stage: round(value, 3) for stage, value in seconds.items()},
    }


def reproduce_hmdb51(root: str | os.PathLike, splits_dir: str | os.PathLike, **params) -> dict:
    """The paper's protocol: train and test on each of the 3 official HMDB51 splits.

    Returns per-split accuracy and mean AP and their mean ± standard deviation.
    """
    per_split = []
    for split_no in (1, 2, 3):
        split = hmdb51_split(root, splits_dir, split_no)
        model = ActionModel(**params).fit(
            [c.path for c in split.train], [c.label for c in split.train]
        )
        report = evaluate_clips(model, split.test)
        per_split.append(
            {
                "split": split_no,
                "accuracy": report["accuracy"],
                "mean_ap": report["mean_ap"],
                "n_train": len(split.train),
                "n_test": report["n_clips"],
                "n_failed": report["n_failed"] + len(model.failures_),
            }
        )
    acc = np.array([s["accuracy"] for s in per_split])
    ap = np.array([s["mean_ap"] for s in per_split])
    return {
        "accuracy": float(acc.mean()),
        "accuracy_std": float(acc.std()),
        "mean_ap": float(ap.mean()),
        "mean_ap_std": float(ap.std()),
        "splits": per_split,
    }
