"""Staff access: users (argon2id), signed server-side sessions, CSRF tokens, login rate limits.

Tables (kb/storage/schema.py):

- ``users``: id, email (unique, lower-case), role (writer | owner), password_hash (argon2id),
  created, disabled.
- ``admin_sessions``: id_hash (sha256 of the session id: a copied database holds no usable
  session), user_id, created, expires.

The cookie holds ``<session id>.<HMAC-SHA256(secret, session id)>``; a login always issues a new
id (no fixation) and logout deletes the row. CSRF tokens are HMAC(secret, "csrf:" + id). The
secret is shared by every process and replica (kb/storage/secrets.py), so any of them validates
any session; the rows are in the shared database for the same reason.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select, update

from kb.errors import AuthError, ForbiddenError, KbError, ValidationError
from kb.settings import Settings
from kb.storage.database import Database
from kb.storage.limits import RateLimiter, Reservation
from kb.storage.schema import admin_sessions, users
from kb.storage.secrets import SESSION_KEY, shared_secret

ROLES = ("writer", "owner")
COOKIE = "kb_admin"
LOGIN_COOKIE = "kb_login"
LOGIN_WINDOW = 15 * 60
MIN_PASSWORD = 10
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown emails, so they take as long as known ones (made once, lazily)."""
    return _hasher.hash("not a real password")


class LoginError(AuthError):
    """Wrong email or password."""


class UserExistsError(KbError):
    """A user with this email already exists."""

    status_code = 409


@dataclass(frozen=True)
class Staff:
    """A logged-in staff member and the session they hold."""

    user_id: int
    email: str
    role: str
    session_id: str
    csrf: str

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"




def secret_key(db: Database, settings: Settings) -> bytes:
    """The signing key: settings.secret_key, else the one every replica shares through the database."""
    if settings.secret_key:
        return settings.secret_key.encode()
    return shared_secret(db, SESSION_KEY).encode()


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, value: str) -> str:
    """`value.signature`."""
    return f"{value}.{_mac(key, value)}"


def unsign(key: bytes, signed: str | None) -> str | None:
    """The value if the signature is valid, else None."""
    value, _, mac = (signed or "").rpartition(".")
    if not value or not mac.isascii():  # signatures are base64; compare_digest raises on other text
        return None
    try:
        expected = _mac(key, value)
    except UnicodeEncodeError:  # a lone surrogate: nothing this server signed
        return None
    return value if hmac.compare_digest(mac, expected) else None


def _hash_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


# -- users --------------------------------------------------------------------------------------


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationError([{"key": "password", "message": f"use at least {MIN_PASSWORD} characters"}])


def add_user(db: Database, email: str, role: str, password: str) -> int:
    """Create a staff user; the password is stored only as an argon2id hash."""
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise ValidationError([{"key": "email", "message": "not an email address"}])
    if role not in ROLES:
        raise ValidationError([{"key": "role", "message": f"role must be one of {', '.join(ROLES)}"}])
    _check_password(password)
    if db.one(select(users.c.id).where(users.c.email == email)):
        raise UserExistsError(f"A user {email} already exists.")
    return int(db.insert(users, {"email": email, "role": role, "password_hash": _hasher.hash(password),
                                 "created": time.time(), "disabled": 0}))


def set_password(db: Database, email: str, password: str) -> None:
    """Change a user's password and end all of their sessions."""
    _check_password(password)
    row = db.one(select(users.c.id).where(users.c.email == email.strip().lower()))
    if row is None:
        raise KbError(f"No user {email}.")
    with db.write() as conn:
        conn.execute(update(users).where(users.c.id == row["id"]).values(password_hash=_hasher.hash(password)))
        conn.execute(delete(admin_sessions).where(admin_sessions.c.user_id == row["id"]))


def authenticate(db: Database, settings: Settings, limiter: RateLimiter, email: str, password: str, ip: str) -> int:
    """The user id for valid credentials; LoginError otherwise, RateLimitedError past the limit.

    Before the password is checked, one attempt is reserved per IP and per account (known or
    not, so 429s do not reveal which emails exist): a concurrent burst gets at most
    rate_login_per_15min argon2 checks, and every later attempt is a fast 429. A successful
    login gives its reservations back, so only failures count.
    """
    email = email.strip().lower()
    held: list[Reservation | None] = []
    try:
        for key in ("login-ip:" + ip, "login-user:" + email):
            held.append(limiter.reserve(key, settings.rate_login_per_15min, LOGIN_WINDOW))
    except Exception:
        for reservation in held:
            limiter.release(reservation)
        raise
    row = db.one(select(users.c.id, users.c.password_hash, users.c.disabled).where(users.c.email == email))
    try:
        _hasher.verify(row["password_hash"] if row else _dummy_hash(), password)
        ok = row is not None and not row["disabled"]
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None:
        raise LoginError()
    for reservation in held:
        limiter.release(reservation)
    if _hasher.check_needs_rehash(row["password_hash"]):
        db.execute(update(users).where(users.c.id == row["id"]).values(password_hash=_hasher.hash(password)))
    return int(row["id"])


# -- sessions -----------------------------------------------------------------------------------


def start_session(db: Database, settings: Settings, user_id: int, old_cookie: str | None = None) -> str:
    """A fresh session for the user (any session the browser held before is ended): the cookie value."""
    key = secret_key(db, settings)
    session_id = secrets.token_urlsafe(32)
    now = time.time()
    old = unsign(key, old_cookie)
    with db.write() as conn:
        if old:
            conn.execute(delete(admin_sessions).where(admin_sessions.c.id_hash == _hash_id(old)))
        conn.execute(delete(admin_sessions).where(admin_sessions.c.expires < now))
        conn.execute(admin_sessions.insert().values(id_hash=_hash_id(session_id), user_id=user_id, created=now,
                                                    expires=now + settings.admin_session_hours * 3600))
    return sign(key, session_id)


def load_session(db: Database, settings: Settings, cookie: str | None) -> Staff | None:
    """The staff member behind a session cookie, or None if it is forged, expired or disabled."""
    key = secret_key(db, settings)
    session_id = unsign(key, cookie)
    if session_id is None:
        return None
    s, u = admin_sessions, users
    row = db.one(select(u.c.id, u.c.email, u.c.role, u.c.disabled, s.c.expires)
                 .join_from(s, u, u.c.id == s.c.user_id).where(s.c.id_hash == _hash_id(session_id)))
    if row is None or row["disabled"] or row["expires"] < time.time():
        return None
    return Staff(row["id"], row["email"], row["role"], session_id, _mac(key, "csrf:" + session_id))


def end_session(db: Database, settings: Settings, cookie: str | None) -> None:
    """Log out: the session row is deleted, so the cookie is worthless even if kept."""
    session_id = unsign(secret_key(db, settings), cookie)
    if session_id:
        db.execute(delete(admin_sessions).where(admin_sessions.c.id_hash == _hash_id(session_id)))


def require_role(staff: Staff | None, roles: tuple[str, ...]) -> Staff:
    """The staff member if their role is allowed: AuthError (anonymous) or ForbiddenError."""
    if staff is None:
        raise AuthError("Log in to see this page.")
    if staff.role not in roles:
        raise ForbiddenError(f"This page is for {' and '.join(r + 's' for r in roles)}.")
    return staff


# -- CSRF -----------------------------------------------------------------------------------


def check_csrf(expected: str, given: str | None) -> None:
    """Refuse (403) a form post whose csrf_token does not match the session's."""
    if not given or not expected or not hmac.compare_digest(expected, given):
        raise ForbiddenError("The form expired or did not come from this site: reload it and try again.")


def login_nonce(db: Database, settings: Settings) -> tuple[str, str]:
    """(cookie value, form token) protecting the login form before any session exists."""
    key = secret_key(db, settings)
    nonce = secrets.token_urlsafe(16)
    return sign(key, nonce), _mac(key, "login:" + nonce)


def login_token(db: Database, settings: Settings, cookie: str | None) -> str:
    """The CSRF token the login form must carry, given its nonce cookie ('' if none)."""
    key = secret_key(db, settings)
    nonce = unsign(key, cookie)
    return _mac(key, "login:" + nonce) if nonce else ""
