"""A build as an artefact that travels between hosts: its files with sizes and SHA-256 digests,
and installing one fetched from elsewhere into a local index root, verified before it goes live.

A build directory is flat and never changes once it is renamed into builds/ (search/store.py),
so its description is worked out once per build. `install` writes into a private temporary
directory, checks every file's size and digest as it arrives, checks that the result reads as a
complete build for this model, and only then renames it into place and swaps `current`: a
corrupted or half-written artefact never goes live, and the build that was live stays live.
Files the live build already holds with the same digest are hard-linked, not fetched again
(record bases are shared from build to build, see search/records.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

from search.errors import IndexCorruptError, IndexMissingError
from search.index import FILES
from search.store import IndexStore, Stored

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a build's name and each of its files'
CHUNK = 1 << 20


@dataclass(frozen=True)
class BuildFile:
    """One file of a build: what a receiver checks it got."""

    name: str
    size: int
    sha256: str


Fetch = Callable[[BuildFile, BinaryIO], None]  # write the named file's bytes to the stream


def valid_name(name: str) -> bool:
    """Whether a build or file name is one a store writes (no path, no dot file, not a temporary)."""
    return bool(NAME.match(name)) and not name.endswith(".tmp")


def describe(build: Path) -> list[BuildFile]:
    """Every file of a build directory with its size and digest, in name order."""
    files = []
    for path in sorted(Path(build).iterdir()):
        if path.is_file() and valid_name(path.name):
            with open(path, "rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            files.append(BuildFile(path.name, path.stat().st_size, digest))
    return files


class _Checked:
    """A write-only stream that counts and hashes what passes through and refuses excess bytes."""

    def __init__(self, out: BinaryIO, expected: BuildFile) -> None:
        self.out, self.expected, self.size, self.hash = out, expected, 0, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self.expected.size:
            raise IndexCorruptError(f"{self.expected.name}: more than the {self.expected.size} bytes announced")
        self.hash.update(data)
        return self.out.write(data)

    def verify(self) -> None:
        if self.size != self.expected.size:
            raise IndexCorruptError(f"{self.expected.name}: {self.size} bytes received of {self.expected.size} (cut short)")
        if self.hash.hexdigest() != self.expected.sha256:
            raise IndexCorruptError(f"{self.expected.name}: SHA-256 {self.hash.hexdigest()[:12]}… is not the published "
                                    f"{self.expected.sha256[:12]}… (corrupted)")


def install(store: IndexStore, name: str, files: Sequence[BuildFile], fetch: Fetch, model: str) -> Path:
    """Fetch a published build into the store, verify it, and make it the live build; its path.

    Raises IndexCorruptError, leaving the live build as it was, when a file is missing, cut short,
    longer than announced or differs from its digest, or the whole does not read as a build of
    `model`. Whatever `fetch` raises (a network error) also leaves everything as it was.
    """
    _check_listing(name, files)
    builds = store.root / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    with open(store.root / ".install.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several workers of one server pull into one root
        target = builds / name
        if target.is_dir() and describe(target) == sorted(files, key=lambda f: f.name):
            store.activate(target)  # already here and intact (another worker, or an earlier pull)
            return target
        have = _reusable(store)
        tmp = builds / f"{name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            for f in files:
                _receive(tmp / f.name, f, have.get((f.name, f.size, f.sha256)), fetch)
            _check_build(tmp, model)
            shutil.rmtree(target, ignore_errors=True)  # a damaged earlier copy
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        store.activate(target)
        return target


def _check_listing(name: str, files: Sequence[BuildFile]) -> None:
    if not valid_name(name):
        raise IndexCorruptError(f"published build name {name!r} is not a build name")
    names = [f.name for f in files]
    bad = [n for n in names if not valid_name(n)]
    if bad or len(set(names)) != len(names):
        raise IndexCorruptError(f"published build {name}: bad or repeated file names {bad or names}")
    missing = [n for n in FILES if n not in names]
    if missing:
        raise IndexCorruptError(f"published build {name} lacks {', '.join(missing)}")


def _reusable(store: IndexStore) -> dict[tuple[str, int, str], Path]:
    """Files of the live build by (name, size, digest): those a new build shares are linked."""
    try:
        live = store.current_path()
    except (IndexMissingError, IndexCorruptError):
        return {}
    return {(f.name, f.size, f.sha256): live / f.name for f in describe(live)}


def _receive(path: Path, expected: BuildFile, local: Path | None, fetch: Fetch) -> None:
    if local is not None:
        try:
            os.link(local, path)
            return
        except OSError:
            pass  # another file system, or links not allowed: fetch it
    with open(path, "wb") as out:
        checked = _Checked(out, expected)
        fetch(expected, checked)  # type: ignore[arg-type]  # only write() is used
        checked.verify()
        out.flush()
        os.fsync(out.fileno())


def _check_build(path: Path, model: str) -> None:
    """The build reads as a complete build of this model (manifest, counts, arrays)."""
    missing = [n for n in FILES if not (path / n).exists()]
    if missing:
        raise IndexCorruptError(f"index build {path.name} is incomplete: missing {', '.join(missing)}")
    Stored(path, model)


__all__ = ["BuildFile", "describe", "install", "valid_name"]
