"""Who is asking, read or made in one place: the client address every per-IP limit and hash is
keyed on, the visitor's session token, and the names of the cookies that carry them."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import secrets

from litestar import Request

from kb.settings import Settings
from kb.staff.auth import secret_key, sign, unsign
from kb.storage.database import Database

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SESSION_ID = re.compile(r"^s_[A-Za-z0-9_-]{24}$")


# -- the client address -------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _address(host: str) -> Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def _host(hop: str) -> str:
    """An X-Forwarded-For entry without its port: '1.2.3.4:5', '[::1]:5' -> '1.2.3.4', '::1'."""
    if hop.startswith("["):
        return hop[1:].split("]", 1)[0]
    return hop.rsplit(":", 1)[0] if hop.count(":") == 1 else hop


def forwarded_client(peer: str, forwarded_for: list[str], proxies: tuple[str, ...]) -> str:
    """The client behind trusted proxies: the right-most X-Forwarded-For hop that is not one.

    Only a trusted peer's header is read; each proxy appends the address it saw, so hops left of
    the first untrusted one are whatever the client wrote and are never believed. When every hop
    is trusted the left-most is the client. The same rule as uvicorn's --forwarded-allow-ips, so
    running behind uvicorn's own rewrite gives the same answer.
    """
    networks = _networks(proxies)

    def trusted(host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in network for network in networks)

    if not networks or not trusted(peer):
        return peer
    hops = [_host(h.strip()) for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            return hop
    return hops[0] if hops else peer


def client_ip(request: Request) -> str:
    """The address of the client ("unknown" if the server was not told); X-Forwarded-For is
    believed only from KB_TRUSTED_PROXIES."""
    peer = request.client.host if request.client else "unknown"
    settings: Settings = request.app.state["settings"]
    return forwarded_client(peer, request.headers.getall("x-forwarded-for", []), settings.trusted_proxies)


# -- the visitor's session --------------------------------------------------------------------------


def _session_key(db: Database, settings: Settings) -> bytes:
    """Its own key, derived from the shared secret: a staff cookie never passes as a visitor token, nor back."""
    return hashlib.sha256(b"kb visitor session\0" + secret_key(db, settings)).digest()


def new_session(db: Database, settings: Settings) -> str:
    """A session token the server signed: `s_<random>.<HMAC>`; only its holder can name that session."""
    return sign(_session_key(db, settings), "s_" + secrets.token_urlsafe(18))


def session_id(db: Database, settings: Settings, token: str | None) -> str:
    """The session a token names, or '' for no token or one no replica of this server signed."""
    value = unsign(_session_key(db, settings), (token or "")[:200])
    return value if value and SESSION_ID.match(value) else ""


# -- cookies ------------------------------------------------------------------------------------


def cookie_name(settings: Settings, name: str) -> str:
    """`__Host-` + name when cookies are Secure: browsers then keep it only if Secure, for path=/ and
    without a Domain, so neither a sibling subdomain nor plain HTTP can plant or overwrite it."""
    return "__Host-" + name if settings.secure_cookies else name
