"""Article history in git: when the articles folder is its own git work tree (KB_ARTICLES_GIT), each
save through the editor is a commit with the staff member as its author.

The git command line is run with a fixed argument list (never a shell), with hooks and the
user's global and system configuration switched off, so a commit means the same on every host.
The folder must be the top of its own work tree: the kb source tree (where the bundled articles
live) is refused, so a save can never commit kb's code.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kb.errors import KbError

GIT_TIMEOUT = 30.0
REVISION = re.compile(r"^[0-9a-f]{7,64}$")
COMMITTER = ("kb", "kb@localhost")


class HistoryError(KbError):
    """The articles folder's git history could not be read or written."""

    status_code = 500


class NotOwnWorkTreeError(KbError):
    """KB_ARTICLES_GIT is on, but the articles folder is not the top of its own git work tree."""

    status_code = 500


@dataclass(frozen=True)
class Version:
    """One commit that changed an article's file."""

    revision: str
    author: str
    email: str
    ts: float
    message: str
    path: str  # the file's name relative to the articles folder at that commit


def _source_tree() -> Path:
    """The work tree kb's own code is in (kb/ is inside it when kb runs from a clone)."""
    return Path(__file__).resolve().parents[2]


class History:
    """Commits and reads the history of files in an articles folder that is a git work tree."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()
        if shutil.which("git") is None:
            raise NotOwnWorkTreeError("KB_ARTICLES_GIT is on, but git is not installed (apt-get install git).")
        top = self._run("rev-parse", "--show-toplevel", check=False).strip()
        if not top or Path(top).resolve() != self.directory:
            raise NotOwnWorkTreeError(
                f"KB_ARTICLES_GIT is on, but {self.directory} is not the top of its own git work tree"
                + (f" (it is inside {top})" if top else "") + f": run `git init {self.directory}` or turn the setting off.")
        if (self.directory / "kb" / "__init__.py").exists() or self.directory == _source_tree():
            raise NotOwnWorkTreeError(f"{self.directory} is kb's source tree: keep the articles in a work tree of their own.")

    def _run(self, *args: str, check: bool = True) -> str:
        argv = ["git", "-C", str(self.directory), "-c", "core.hooksPath=/dev/null", "-c", "core.quotepath=off",
                "-c", "commit.gpgsign=false", "-c", f"user.name={COMMITTER[0]}", "-c", f"user.email={COMMITTER[1]}",
                *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=GIT_TIMEOUT, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HistoryError(f"git {args[0]} failed: {exc}") from exc
        if check and done.returncode != 0:
            raise HistoryError(f"git {args[0]} failed: {done.stderr.strip()[:500]}")
        return done.stdout

    def commit(self, paths: list[str], message: str, author_email: str) -> str:
        """Commit these files (added, changed or deleted) as the staff member (kb is the committer);
        the new revision, or '' when none of them changed."""
        self._run("add", "-A", "--", *paths)
        if not self._run("diff", "--cached", "--name-only", "--", *paths).strip():
            return ""
        email = re.sub(r"[<>\s]", "", author_email)
        author = f"{email.split('@', 1)[0] or email} <{email}>"
        self._run("commit", "-q", "--no-verify", f"--author={author}", "-m", message, "--", *paths)
        return self._run("rev-parse", "HEAD").strip()

    def versions(self, path: str, limit: int = 100) -> list[Version]:
        """The commits that changed a file, newest first, following it through renames."""
        out = self._run("log", "--follow", f"--max-count={limit}", "--name-only",
                        "--format=%x1e%H%x1f%an%x1f%ae%x1f%at%x1f%s", "--", path, check=False)
        versions = []
        for record in out.split("\x1e")[1:]:
            head, _, names = record.partition("\n")
            fields = head.split("\x1f")
            files = [n for n in names.splitlines() if n.strip()]
            if len(fields) == 5 and files:
                versions.append(Version(fields[0], fields[1], fields[2], float(fields[3]), fields[4], files[-1]))
        return versions

    def source(self, revision: str, path: str) -> str:
        """A file's text at a revision (HistoryError if the revision does not hold it)."""
        if not REVISION.match(revision):
            raise HistoryError(f"not a revision: {revision[:80]!r}")
        return self._run("show", f"{revision}:{path}")
