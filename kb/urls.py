"""Every path kb links to, built in one place (as datasette's `Urls`): portal, admin, API, absolute.

Templates get an instance as `urls`; handlers, the request log and ticket e-mails use the same one,
so a path is spelled once. Paths that come from a request (a `next=` target, the page a language
link points back to) go through `local_path`, which only ever returns a path on this site.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

# Characters a path may keep as they are; everything else (backslash, tab, CR/LF, spaces, '%'
# sequences the browser would decode into them) is percent-encoded, so a browser never reads the
# result as another host ("/\\evil.example" is "//evil.example" to Chromium).
_PATH_SAFE = "/-._~!$&'()*+,;=:@"


def local_path(path: str | None, default: str = "/", prefix: str = "/") -> str:
    """A same-origin path built from untrusted input: one leading slash, hostile characters
    encoded, under `prefix`; `default` when nothing usable is left."""
    if not path or not path.startswith("/"):
        return default
    # errors="replace": a lone surrogate (which no UTF-8 encodes) becomes "?", encoded, not a 500.
    safe = "/" + quote(path.lstrip("/\\"), safe=_PATH_SAFE, errors="replace")
    return safe if safe.startswith(prefix) else default


def _query(params: dict[str, object]) -> str:
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode(kept, errors="replace") if kept else ""


class Urls:
    """The paths of kb's pages and endpoints; `absolute` prefixes the public base URL."""

    def __init__(self, base_url: str = "") -> None:
        self.base_url = base_url.rstrip("/")

    def absolute(self, path: str) -> str:
        """A link that leaves the site (ticket e-mails, webhooks): the base URL and the path."""
        return self.base_url + path

    # -- portal -------------------------------------------------------------------------

    def home(self, **query: object) -> str:
        return "/" + _query(query)

    def article(self, slug: str, anchor: str = "", **query: object) -> str:
        return f"/articles/{quote(slug)}" + _query(query) + (f"#{quote(anchor)}" if anchor else "")

    def article_feedback(self, slug: str) -> str:
        return f"/articles/{quote(slug)}/feedback"

    def category(self, key: str) -> str:
        return f"/categories/{quote(key)}"

    def search(self, q: str = "", **query: object) -> str:
        return "/search" + _query({"q": q, **query})

    def go(self, request_id: str, slug: str, anchor: str = "") -> str:
        """A search result link: records the click, then redirects to the article."""
        return "/go" + _query({"r": request_id, "slug": slug, "anchor": anchor})

    def contact(self, q: str = "") -> str:
        return "/contact" + _query({"q": q})

    def contact_thanks(self, ticket_id: str) -> str:
        return "/contact/thanks" + _query({"id": ticket_id})

    def static(self, name: str) -> str:
        return f"/static/{quote(name)}"

    def widget_script(self) -> str:
        return "/widget/kb-widget.js"

    def widget_demo(self) -> str:
        return "/widget/demo"

    def with_locale(self, path: str, locale: str, **query: object) -> str:
        """The same page in another language (the language switcher)."""
        return local_path(path) + _query({**query, "locale": locale})

    # -- staff --------------------------------------------------------------------------

    def admin(self, page: str = "", **query: object) -> str:
        return "/admin" + (f"/{page}" if page else "") + _query(query)

    def login(self, next: str = "") -> str:
        return "/admin/login" + _query({"next": next})

    def gaps(self, **filters: object) -> str:
        return "/admin/gaps" + _query(filters)

    def gap(self, gap_id: int, action: str = "") -> str:
        return f"/admin/gaps/{int(gap_id)}" + (f"/{action}" if action else "")

    def gap_trend(self, gap_id: int) -> str:
        return self.gap(gap_id, "trend.svg")

    def gap_refresh(self) -> str:
        return "/admin/gaps/refresh"

    def gaps_export(self) -> str:
        return "/admin/gaps/export.csv"

    def dashboard(self, **query: object) -> str:
        return "/admin/dashboard" + _query(query)

    def dashboard_export(self, table: str, **query: object) -> str:
        return f"/admin/dashboard/export/{quote(table)}.csv" + _query(query)

    def chart(self, name: str, **query: object) -> str:
        return f"/admin/charts/{quote(name)}" + _query(query)

    def articles_admin(self, **filters: object) -> str:
        """The article editor's list."""
        return "/admin/articles" + _query(filters)

    def article_new(self, **query: object) -> str:
        return "/admin/articles/new" + _query(query)

    def article_edit(self, slug: str, **query: object) -> str:
        return f"/admin/articles/{quote(slug)}/edit" + _query(query)

    def article_status(self, slug: str) -> str:
        return f"/admin/articles/{quote(slug)}/status"

    def article_history(self, slug: str) -> str:
        return f"/admin/articles/{quote(slug)}/history"

    def article_version(self, slug: str, revision: str, action: str = "", **query: object) -> str:
        return f"/admin/articles/{quote(slug)}/versions/{quote(revision)}" + (f"/{action}" if action else "") + _query(query)

    def article_image(self, name: str) -> str:
        """An image uploaded into the articles folder, as articles link to it."""
        return f"/articles/images/{quote(name)}"

    def audit(self, **query: object) -> str:
        return "/admin/audit" + _query(query)

    def audit_export(self, **query: object) -> str:
        return "/admin/audit.csv" + _query(query)

    # -- API ----------------------------------------------------------------------------

    def api(self, path: str, **query: object) -> str:
        return "/api/v1/" + path.lstrip("/") + _query(query)

