"""Entries: one clip's descriptors in one ``.npz`` file, written whole or not at all.

An entry holds the arrays ``format``, ``n_frames``, ``transcoded``, ``boxes`` (N × 6, int32),
``hof``, ``mbhx``, ``mbhy``, ``hog`` if described (N × d, float32) and what it was made from:
``key`` (the sha256 of the clip's content and of everything the descriptors depend on,
`ExtractionSpec.key`),
``content`` (the clip's sha256), ``source_size`` and ``source_mtime_ns``. It is read with
``allow_pickle=False``. The feature store and the per-user cache (`actionlrp.store`) hold
entries of this one format, written by `write_entry` through `atomic_file`.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from actionlrp import __version__
from actionlrp.atomic import atomic_file
from actionlrp.descriptors import FEATURE_TYPES, DescriptorParams, LocalDescriptors

__all__ = [
    "ENTRY_FORMAT",
    "EntryInfo",
    "ExtractionSpec",
    "entry_info",
    "file_sha256",
    "read_entry",
    "write_entry",
]

#: Version of an entry's content; part of every key.
ENTRY_FORMAT = 2


@dataclass(frozen=True)
class ExtractionSpec:
    """Everything a clip's descriptors depend on besides the clip itself.

    Attributes
    ----------
    motion : {"mv", "flow"}
    cell : int
        Motion-field grid cell in pixels.
    params : DescriptorParams
    transcode : bool
        Re-encode clips whose codec exports no vectors (not part of the key: an entry records
        whether it was transcoded).
    """

    motion: str = "mv"
    cell: int = 8
    params: DescriptorParams = field(default_factory=DescriptorParams)
    transcode: bool = False

    def key(self, content_sha256: str) -> str:
        """sha256 of the clip's content (hex) and of everything the descriptors depend on."""
        spec = {
            "format": ENTRY_FORMAT,
            "actionlrp": __version__,
            "content": content_sha256,
            "motion": self.motion,
            "cell": int(self.cell),
            "params": _key_params(self.params),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def to_json(self) -> dict:
        return {
            "motion": self.motion,
            "cell": int(self.cell),
            "params": asdict(self.params),
            "transcode": bool(self.transcode),
        }

    @classmethod
    def from_json(cls, data: dict) -> ExtractionSpec:
        stored = {"hog": False, **data["params"]}  # written before HOG existed: motion alone
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
        return cls(
            data["motion"],
            int(data["cell"]),
            DescriptorParams(**params),
            bool(data.get("transcode", False)),
        )


def _key_params(params: DescriptorParams) -> dict:
    """``params`` as the key sees them: without HOG's fields while it is off, so entries made
    before HOG existed keep their keys (they are the same descriptors)."""
    fields = asdict(params)
    if not params.hog:
        del fields["hog"], fields["hog_floor"]
    return fields


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's content, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class EntryInfo:
    """What an entry says of itself, without its descriptors."""

    key: str
    content: str
    source_size: int
    source_mtime_ns: int
    n_frames: int
    n_cubes: int
    transcoded: bool = False


def read_entry(
    path: str | os.PathLike, params: DescriptorParams, transcode: bool, key: str | None = None
) -> tuple[LocalDescriptors, int] | None:
    """``(descriptors, n_frames)`` of an entry, or None when it is absent, unreadable, of
    another format or key, of other dimensions, or made by re-encoding a clip while
    ``transcode`` is False."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != ENTRY_FORMAT:
                return None
            if key is not None and str(data["key"]) != key:
                return None
            if bool(data["transcoded"]) and not transcode:
                return None  # recompute, so the clip fails as it would without a cache
            n_frames = int(data["n_frames"])
            boxes = data["boxes"]
            features = {k: data[k] for k in params.dims()}
    except Exception:  # noqa: BLE001 — any unreadable entry is a miss
        return None
    n = boxes.shape[0] if boxes.ndim == 2 else -1
    dims = params.dims()
    ok = boxes.shape == (n, 6) and boxes.dtype == np.int32 and n_frames >= 0
    ok = ok and all(f.dtype == np.float32 and f.shape == (n, dims[k]) for k, f in features.items())
    return (LocalDescriptors(features, boxes), n_frames) if ok else None


def entry_info(path: str | os.PathLike) -> EntryInfo | None:
    """The header of an entry of this format (its key, source and size), or None."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != ENTRY_FORMAT or set(data.files) < {"key", *FEATURE_TYPES}:
                return None
            return EntryInfo(
                str(data["key"]),
                str(data["content"]),
                int(data["source_size"]),
                int(data["source_mtime_ns"]),
                int(data["n_frames"]),
                int(data["boxes"].shape[0]),
                bool(data["transcoded"]),
            )
    except Exception:  # noqa: BLE001 — unreadable: not an entry
        return None


def write_entry(
    path: str | os.PathLike,
    desc: LocalDescriptors,
    n_frames: int,
    transcoded: bool,
    compress: bool,
    source: dict[str, Any] | None = None,
    durable: bool = False,
) -> None:
    """Write an entry (``.npz``, arrays only) atomically: a temporary file, then ``os.replace``.

    ``compress``: deflate at level 1, a third of the size for about the cost of the extraction
    (level 6, ``np.savez_compressed``'s, costs twice that for 5 % less): a feature store's
    entries are, the cache's not (it was a fifth of an empty-cache ``evaluate``). ``source``:
    ``key``, ``content`` (sha256), ``source_size`` and ``source_mtime_ns`` of the clip. ``durable``:
    fsync before the rename, so a power cut leaves the old state or the whole entry. On any
    error the temporary file is removed and the exception (an `OSError`) goes to the caller.
    """
    source = source or {}
    arrays = {
        "format": np.int64(ENTRY_FORMAT),
        "n_frames": np.int64(n_frames),
        "transcoded": np.bool_(transcoded),
        "key": np.str_(source.get("key", "")),
        "content": np.str_(source.get("content", "")),
        "source_size": np.int64(source.get("source_size", -1)),
        "source_mtime_ns": np.int64(source.get("source_mtime_ns", -1)),
        "boxes": desc.boxes,
        **desc.features,
    }
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        with zipfile.ZipFile(f, "w", method, compresslevel=1 if compress else None) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        if durable:
            f.flush()
            os.fsync(f.fileno())
