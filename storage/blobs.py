"""Content-addressed blob store: files on disk named by the SHA-256 of their bytes.

A blob lives at `root/ab/cd/abcd...` (first two byte pairs of the hex digest as folders). Writes
are atomic: the bytes go to a temporary file in the destination folder, are fsynced, then
renamed into place, so a crash leaves either the whole file or no file, never a partial one.
A blob file with no database row is harmless: the next ingest of the same bytes reuses it.

    store = BlobStore(settings.blobs_path)
    sha = store.put_bytes(data)
    data = store.read_bytes(sha)
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
TEMP_PREFIX = ".tmp-"


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        # The digest is validated so a caller can never turn it into a path outside root.
        if not _SHA256.match(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def read_bytes(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def put_bytes(self, data: bytes, sha256: str | None = None) -> str:
        """Store `data`; returns its SHA-256. A no-op when an intact copy is already there.

        `sha256` may be passed when the caller has already hashed the bytes (one pass).
        """
        sha = sha256 or hashlib.sha256(data).hexdigest()
        dest = self.path(sha)
        try:
            if dest.stat().st_size == len(data):
                return sha
        except FileNotFoundError:
            pass
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, dest)
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(dest.parent)
        return sha

    def temp_files(self) -> list[Path]:
        """Leftover temporary files (only a killed process leaves these; safe to delete)."""
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.rglob(f"{TEMP_PREFIX}*") if p.is_file())

    def verify(self, sha256: str) -> bool:
        """True when the file exists and its bytes hash to its name."""
        try:
            data = self.read_bytes(sha256)
        except FileNotFoundError:
            return False
        return hashlib.sha256(data).hexdigest() == sha256


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
