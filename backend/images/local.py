"""Objects as files under DATA_DIR/images: the embedded default, no cloud needed.

A file is written under a temporary name, then hard-linked to its path: the link fails if the
path exists, so "create only if absent" holds across threads and processes, and a reader never
sees a half-written file.
"""

import contextlib
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from backend.errors import ImageStoreUnavailable
from backend.images.base import ImageStore


class LocalImageStore(ImageStore):
    name = "local"

    def __init__(self, data_dir):
        self.root = Path(data_dir) / "images"
        self.root.mkdir(parents=True, exist_ok=True)

    def ping(self, timeout_s):
        if not (self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)):
            raise ImageStoreUnavailable(f"{self.root} is not a folder this service can write to", "images-local")

    def _file(self, path: str) -> Path:
        parts = PurePosixPath(path).parts
        if not parts or any(part in ("", ".", "..") for part in parts) or path.startswith("/"):
            raise ValueError(f"not an object path: {path!r}")
        return self.root.joinpath(*parts)

    def put(self, path, data, content_type):
        target = self._file(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".incoming-", delete=False) as temp:
                temp.write(data)
            try:
                os.link(temp.name, target)
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(temp.name)
        except OSError as exc:
            raise ImageStoreUnavailable(f"cannot write {path}: {exc.strerror}", "images-local") from exc

    def get(self, path):
        try:
            return self._file(path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ImageStoreUnavailable(f"cannot read {path}: {exc.strerror}", "images-local") from exc

    def delete(self, path):
        file = self._file(path)
        try:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # no such object: already removed
                file.unlink()
            folder = file.parent
            while folder != self.root:  # the analysis's (or study's) folders, once their last object is gone
                try:
                    folder.rmdir()
                except OSError:
                    break
                folder = folder.parent
        except OSError as exc:
            raise ImageStoreUnavailable(f"cannot delete {path}: {exc.strerror}", "images-local") from exc

    def list_older_than(self, prefix, cutoff):
        # os.walk, not rglob: a folder or file another thread removes meanwhile (a worker's clean-up, a delete) is
        # passed over, where rglob would raise
        found = []
        for folder, _, names in os.walk(self._file(prefix)):
            for name in names:
                if name.startswith(".incoming-"):
                    continue
                file = Path(folder) / name
                with contextlib.suppress(FileNotFoundError):
                    if datetime.fromtimestamp(file.stat().st_mtime, UTC) < cutoff:
                        found.append(file.relative_to(self.root).as_posix())
        return sorted(found)
