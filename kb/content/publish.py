"""One index build for every replica: the publisher offers its live build, replicas pull it.

The publisher is the one kb server that holds the articles source (a git work tree or a volume)
and builds the index: `kb index` run there as a job, or the editor's saves, swap a new build in
as on a single box. With KB_PUBLISH_INDEX=true it also offers that build at /api/v1/index: the
build's name and each file's size and SHA-256.

A replica (KB_INDEX_SOURCE=http://publisher:port) asks every KB_INDEX_POLL_SECONDS which build is
live there; when it is not the replica's own, it downloads the files it lacks (those it holds
with the same digest are linked), verifies every size and digest and that the whole reads as a
build of its model (search/artefact.py), and swaps it in. So nothing is embedded twice, a replica
serves one build at a time, a corrupted or half-written download is refused, and while the
publisher is down every replica keeps serving its last good build.

Requests carry a bearer token that every process sharing the database can read (the
`index_token` shared secret, kb/storage/secrets.py): a replica needs no setting but the
publisher's URL.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from pathlib import Path
from typing import BinaryIO, Callable

import httpx
import msgspec

from search.artefact import CHUNK, BuildFile, Fetch, describe, install, valid_name
from search.errors import IndexCorruptError, IndexMissingError
from search.store import IndexStore

from kb.errors import AuthError, ForbiddenError, IndexUnavailableError, KbError, NotFoundError
from kb.settings import Settings

log = logging.getLogger("kb.content.publish")
PATH = "/api/v1/index"
MAX_BACKOFF_SECONDS = 60.0
TIMEOUT = httpx.Timeout(10.0, read=60.0)


class ArticlesElsewhereError(KbError):
    """This server pulls its index from a publisher: articles are edited and indexed there."""

    status_code = 409


class PublisherError(KbError):
    """The index publisher could not be reached, or offered a build that failed its checks."""

    status_code = 503


class FileOut(msgspec.Struct):
    name: str
    size: int
    sha256: str


class Offer(msgspec.Struct):
    """What GET /api/v1/index answers: the publisher's live build."""

    version: str
    model: str
    files: list[FileOut]


def require_articles_source(settings: Settings) -> None:
    """Refuse (ArticlesElsewhereError) on a server that pulls its index: articles are written and
    builds are made only on the publisher, where the articles source is."""
    if settings.index_source:
        raise ArticlesElsewhereError(
            f"This server serves the index published by {settings.index_source}: edit articles and run "
            "`kb index` on that server."
        )


def authorize(settings: Settings, expected: str, header: str) -> None:
    """Check a request for published builds against the index token (the `index_token` shared
    secret): 404 unless publishing, 401 without a token, 403 for a wrong one."""
    if not settings.publish_index:
        raise NotFoundError("This server does not publish its index (KB_PUBLISH_INDEX).")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise AuthError("Replicas send the index token as a bearer token.")
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise ForbiddenError("The index token is wrong: is this replica on the publisher's database?")


_offers: dict[Path, Offer] = {}
_offers_lock = threading.Lock()


def offer(settings: Settings) -> Offer:
    """The live build as the publisher offers it (digests worked out once per build)."""
    try:
        build = IndexStore(settings.index_path).current_path()
    except (IndexMissingError, IndexCorruptError) as exc:
        raise IndexUnavailableError(f"No index to publish yet: {exc}") from exc
    with _offers_lock:
        cached = _offers.get(build)
    if cached is not None:
        return cached
    manifest = msgspec.json.decode((build / "manifest.json").read_bytes())
    made = Offer(build.name, str(manifest.get("model", "")),
                 [FileOut(f.name, f.size, f.sha256) for f in describe(build)])
    with _offers_lock:
        if len(_offers) > 8:
            _offers.clear()
        _offers[build] = made
    return made


def build_file(settings: Settings, version: str, name: str) -> Path:
    """A file of a build the publisher still keeps, for download; NotFoundError for anything else."""
    path = settings.index_path / "builds" / version / name
    if not (valid_name(version) and valid_name(name) and path.is_file()):
        raise NotFoundError(f"No file {name!r} in a published build {version!r} (builds are pruned; ask /api/v1/index again).")
    return path


class Puller:
    """A replica's side: install each new build the publisher offers; never more than one at a time."""

    def __init__(self, settings: Settings, token: Callable[[], str], model: str,
                 client: httpx.Client | None = None) -> None:
        self.source = settings.index_source.rstrip("/")
        self.store = IndexStore(settings.index_path)
        self.model = model
        self.poll = max(settings.index_poll_seconds, 0.1)
        self._token = token
        self._client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=False)
        self._lock = threading.Lock()
        self.failures = 0
        self.last_error = ""
        self._retry_at = 0.0

    @property
    def local_version(self) -> str | None:
        """The name of the build this server has live (None: none yet)."""
        version = self.store.version()
        return Path(version).name if version else None

    def pull(self) -> str | None:
        """Install the publisher's live build unless it is already live here; its name, or None
        when nothing changed or the pull failed (logged once per outage, retried with backoff)."""
        with self._lock:
            if time.monotonic() < self._retry_at:
                return None
            try:
                installed = self._pull()
            except PublisherError as exc:
                self._failed(exc.message)
                return None
            if self.failures:
                log.info("index publisher %s answers again", self.source)
            self.failures, self.last_error, self._retry_at = 0, "", 0.0
            if installed:
                log.info("installed index build %s from %s", installed, self.source)
            return installed

    def _failed(self, message: str) -> None:
        if message != self.last_error:  # once per distinct failure, not every poll
            log.warning("keeping index build %s: %s", self.local_version or "(none)", message)
        self.failures += 1
        self.last_error = message
        self._retry_at = time.monotonic() + min(MAX_BACKOFF_SECONDS, self.poll * 2 ** (self.failures - 1))

    def _pull(self) -> str | None:
        offered = self._offer()
        if offered.version == self.local_version:
            return None
        if offered.model != self.model:
            raise PublisherError(f"the publisher builds with model {offered.model!r}; this server runs {self.model!r}")
        files = [BuildFile(f.name, f.size, f.sha256) for f in offered.files]
        try:
            install(self.store, offered.version, files, self._fetcher(offered.version), self.model)
        except IndexCorruptError as exc:
            raise PublisherError(f"refused build {offered.version} from {self.source}: {exc}") from exc
        return offered.version

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}", "User-Agent": "kb-replica/1"}

    def _offer(self) -> Offer:
        try:
            response = self._client.get(self.source + PATH, headers=self._headers())
        except httpx.HTTPError as exc:
            raise PublisherError(f"index publisher {self.source} unreachable: {type(exc).__name__}: {exc}") from exc
        _check_status(response, self.source)
        try:
            return msgspec.json.decode(response.content, type=Offer)
        except msgspec.DecodeError as exc:
            raise PublisherError(f"index publisher {self.source} answered something else: {exc}") from exc

    def _fetcher(self, version: str) -> Fetch:
        def fetch(f: BuildFile, out: BinaryIO) -> None:
            url = f"{self.source}{PATH}/{version}/{f.name}"
            try:
                with self._client.stream("GET", url, headers=self._headers()) as response:
                    _check_status(response, self.source)
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
            except httpx.HTTPError as exc:  # cut off mid-file: refused like a wrong digest
                raise IndexCorruptError(f"{f.name}: download failed: {type(exc).__name__}: {exc}") from exc

        return fetch

    def wait_for_build(self, seconds: float) -> None:
        """At start: pull, and with no build here yet keep asking for up to `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            self._retry_at = 0.0
            self.pull()
            if self.local_version is not None:
                return
            if time.monotonic() >= deadline:
                raise IndexUnavailableError(f"No index yet, and none could be pulled: {self.last_error}")
            log.info("waiting for the index publisher %s: %s", self.source, self.last_error)
            time.sleep(min(self.poll * 2, 5.0))

    def close(self) -> None:
        self._client.close()


def _check_status(response: httpx.Response, source: str) -> None:
    if response.status_code == 200:
        return
    if response.status_code in (401, 403):
        reason = "refused the index token (is this server on the publisher's database?)"
    elif response.status_code == 404:
        reason = "has no such build, or does not publish (KB_PUBLISH_INDEX=true there)"
    else:
        reason = f"answered {response.status_code}"
    raise PublisherError(f"index publisher {source} {reason}")


__all__ = ["ArticlesElsewhereError", "Offer", "PublisherError", "Puller", "authorize", "build_file", "offer",
           "require_articles_source"]
