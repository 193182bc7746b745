"""actionlrp: interpretable human action recognition in the compressed domain.

Motion vectors read from the bitstream → HOF / MBHx / MBHy on space-time cubes → Fisher vectors
→ linear SVM, and Layer-wise Relevance Propagation of a score back to the frames and motion
vectors it came from. The main names load on first use, so ``import actionlrp`` stays cheap.

Examples
--------
>>> import actionlrp
>>> sorted(actionlrp.RULES)
['fine', 'fine-zero', 'paper']
>>> actionlrp.DEFAULT_RULE.name
'fine'
>>> actionlrp.Rule(name="mine", epsilon=0.1, histogram="flat", root="still").per_bin
True
"""

import os
from importlib import import_module

# OpenBLAS's idle threads busy-wait 2^28 cycles (about 0.1 s) after each threaded call, holding
# the CPU that `describe` and the relevance steps run their compiled kernels on between GEMMs.
# 2^4 lets them sleep at once. OpenBLAS reads this once, when numpy loads it; a value already in
# the environment wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from actionlrp.errors import (  # noqa: E402
    ActionLRPError,
    DatasetError,
    EmptyClipError,
    ModelFileError,
    NoMotionVectorsError,
    StoreError,
    UnknownClassError,
    VideoError,
)

__version__ = "0.1.0"

#: Public name → the module that defines it (imported on first use).
_PUBLIC = {
    "ActionModel": "actionlrp.model",
    "cross_validate": "actionlrp.model",
    "evaluate_clips": "actionlrp.model",
    "Rule": "actionlrp.rules",
    "RULES": "actionlrp.rules",
    "FINE": "actionlrp.rules",
    "PAPER": "actionlrp.rules",
    "FINE_ZERO": "actionlrp.rules",
    "DEFAULT_RULE": "actionlrp.rules",
    "Explanation": "actionlrp.relevance",
    "Forward": "actionlrp.relevance",
    "explain": "actionlrp.relevance",
    "MotionField": "actionlrp.video",
    "read_motion_field": "actionlrp.codec",
    "motion_field": "actionlrp.motion",
    "described_motion_field": "actionlrp.motion",
    "farneback_motion_field": "actionlrp.flow",
    "DescriptorParams": "actionlrp.descriptors",
    "LocalDescriptors": "actionlrp.descriptors",
    "describe": "actionlrp.descriptors",
    "StreamingDescriber": "actionlrp.descriptors",
    "HistogramLayer": "actionlrp.descriptors_lrp",
    "FisherEncoder": "actionlrp.fisher",
    "FisherVector": "actionlrp.fisher",
    "LinearClassifier": "actionlrp.classifier",
    "write_report": "actionlrp.pages",
    "explain_video": "actionlrp.report",
    "explain_dataset": "actionlrp.report",
    "Clip": "actionlrp.datasets",
    "folder_dataset": "actionlrp.datasets",
    "load_split": "actionlrp.datasets",
    "extract_descriptors": "actionlrp.extraction",
    "extract_to_store": "actionlrp.extraction",
    "FeatureStore": "actionlrp.store",
    "make_dataset": "actionlrp.builtin",
}

__all__ = [
    "ActionLRPError",
    "DatasetError",
    "EmptyClipError",
    "ModelFileError",
    "NoMotionVectorsError",
    "StoreError",
    "UnknownClassError",
    "VideoError",
    "__version__",
    *_PUBLIC,
]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'actionlrp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
