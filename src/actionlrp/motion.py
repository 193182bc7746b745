"""The model's input layer: a clip's motion field, from its motion vectors or from its pixels.

`motion_field` is what the model, the datasets and the command line read a clip with; the
motion vectors are `actionlrp.codec`'s, the pixel-domain reference `actionlrp.flow`'s (design §1).
"""

from __future__ import annotations

import os

from actionlrp.codec import read_motion_field
from actionlrp.descriptors import DescriptorParams, LocalDescriptors, StreamingDescriber, describe
from actionlrp.video import MotionField

#: The ways to get a clip's motion field.
METHODS = ("mv", "flow")


def motion_field(
    path: str | os.PathLike,
    method: str = "mv",
    cell: int = 8,
    *,
    transcode: bool = False,
    hog: bool = False,
) -> MotionField:
    """The motion field of a clip from its motion vectors (``"mv"``) or from Farnebäck flow.

    Parameters
    ----------
    path : path-like
        The video file.
    method : {"mv", "flow"}
        ``"flow"`` is the pixel-domain reference of `actionlrp.flow`; it decodes every pixel.
    cell : int
        Grid cell in pixels.
    transcode : bool
        ``"mv"`` only: re-encode a clip whose codec exports no vectors (`codec.read_motion_field`).
    hog : bool
        Also the luma's gradient histograms per frame and grid cell (`MotionField.hog`).

    Returns
    -------
    MotionField
        Flow (T, gh, gw, 2) in px per frame.
    """
    if method == "mv":
        return read_motion_field(path, cell, transcode=transcode, hog=hog)
    if method == "flow":
        from actionlrp.flow import farneback_motion_field  # OpenCV loads only when asked for

        return farneback_motion_field(path, cell, hog=hog)
    raise ValueError(f"motion method must be one of {METHODS}, got {method!r}")


def described_motion_field(
    path: str | os.PathLike,
    params: DescriptorParams,
    method: str = "mv",
    cell: int = 8,
    *,
    transcode: bool = False,
) -> tuple[MotionField, LocalDescriptors]:
    """``(field, describe(field, params))`` of a clip, the field read as in `motion_field`
    (with HOG where ``params`` asks for it).

    From the motion vectors, the cubes are described while the clip decodes
    (`actionlrp.descriptors.StreamingDescriber`): the work runs beside the decoder instead of
    after it, and the descriptors are the same.
    """
    if method != "mv":
        field_ = motion_field(path, method, cell, transcode=transcode, hog=params.hog)
        return field_, describe(field_, params)
    describer = StreamingDescriber(params)
    field_ = read_motion_field(path, cell, transcode=transcode, hog=params.hog, describer=describer)
    return field_, describer.finish(field_)
