"""actionlrp: interpretable human action recognition in the compressed domain."""

import os

# OpenBLAS's idle threads busy-wait 2^28 cycles (about 0.1 s) after each threaded call, holding
# the CPU that `describe` and the relevance steps run their compiled kernels on between GEMMs.
# 2^4 lets them sleep at once. OpenBLAS reads this once, when numpy loads it; a value already in
# the environment wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from actionlrp.errors import (
    ActionLRPError,
    DatasetError,
    ModelFileError,
    NoMotionVectorsError,
    VideoError,
)

__version__ = "0.1.0"

__all__ = [
    "ActionLRPError",
    "DatasetError",
    "ModelFileError",
    "NoMotionVectorsError",
    "VideoError",
    "__version__",
]
