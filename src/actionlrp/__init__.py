"""actionlrp: interpretable human action recognition in the compressed domain."""

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
