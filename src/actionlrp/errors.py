"""The project's exceptions: one base class, one line per message (path, reason, remedy)."""

from __future__ import annotations


class ActionLRPError(Exception):
    """Base class of every error actionlrp raises on purpose."""


class VideoError(ActionLRPError):
    """A video file cannot be read: missing, not a video, no video stream, nothing decodes."""


class NoMotionVectorsError(VideoError):
    """The video's codec exports no motion vectors (HEVC, VP9, AV1, MJPEG ...)."""


class ModelFileError(ActionLRPError):
    """A model file is missing, truncated, tampered with or of another version."""


class DatasetError(ActionLRPError):
    """A dataset folder, split file or group file is missing or malformed."""


class EmptyClipError(ActionLRPError):
    """A clip has no local descriptors (N = 0), so it has no Fisher vector."""


class UnknownClassError(ActionLRPError, ValueError):
    """A class name the model does not know; the message lists the model's classes."""


class StoreError(ActionLRPError):
    """A feature store is missing, of other parameters, or cannot be written (a full disk)."""
