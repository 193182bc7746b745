"""Files that appear whole or not at all: write a temporary file beside, then rename it.

Every output of actionlrp (model files, reports, figures, videos, store entries) goes through
`atomic_file`: a reader, or a run started after a kill, sees the old file or the new one.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

__all__ = ["HOST", "atomic_file", "write_text_atomic"]

#: This machine's name as it appears in temporary file names.
HOST = socket.gethostname().replace("~", "-")[:40]

_UMASK = os.umask(0o022)
os.umask(_UMASK)


class atomic_file:  # noqa: N801 — used as a context manager, like open()
    """``with atomic_file(path) as tmp:`` write ``tmp``; it becomes ``path`` on success only.

    The temporary file lies beside ``path`` (same folder, same suffix, so writers that choose
    the format by suffix still do), hidden, and named after this host and process, so a later
    run can tell a dead writer's leftover (`FeatureStore.clean_temporaries`). An `OSError` (a
    full disk) leaves no file behind and is raised again with ``path`` as its file name.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{self.path.name[:80]}~{HOST}~{os.getpid()}~"
        fd, tmp = tempfile.mkstemp(
            prefix=prefix, suffix=f".tmp{self.path.suffix}", dir=self.path.parent
        )
        os.close(fd)
        self.tmp = Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # as open() would make it, not mkstemp's 0600
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                os.replace(self.tmp, self.path)
        except OSError as error:
            exc = error
        finally:
            self.tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            # Name the file meant, not the temporary one (or none: a write on a descriptor).
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a text file whole or not at all (UTF-8)."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
