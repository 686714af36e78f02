"""Staff access: every admin route refuses anonymous and wrong-role users, CSRF, fixation,
cookie flags, login rate limits, logout and expiry."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from litestar.testing import TestClient

from kb.staff import auth
from kb.errors import RateLimitedError, ValidationError
from kb.settings import Settings
from kb.storage.limits import RateLimiter
from kb.storage.schema import rate_limits
from servers import TEST_HOST

ARTICLES = Path(__file__).resolve().parents[1] / "articles"

PASSWORD = "correct horse battery"
OWNER_ONLY_GET = ["/admin/dashboard", "/admin/dashboard/export/figures.csv", "/admin/charts/daily.svg",
                  "/admin/charts/funnel.svg", "/admin/audit", "/admin/audit.csv"]
STAFF_GET = ["/admin", "/admin/gaps", "/admin/gaps/1", "/admin/gaps/1/trend.svg", "/admin/gaps/export.csv",
             "/admin/articles", "/admin/articles/new", "/admin/articles/vpn-connect/edit",
             "/admin/articles/vpn-connect/history", "/admin/articles/vpn-connect/versions/0123456"]
STAFF_POST = ["/admin/logout", "/admin/gaps/refresh", "/admin/gaps/1/link", "/admin/gaps/1/replay",
              "/admin/gaps/1/status", "/admin/articles/new", "/admin/articles/vpn-connect/edit",
              "/admin/articles/vpn-connect/status", "/admin/articles/vpn-connect/versions/0123456/restore"]
API_OWNER = ["/api/v1/admin/stats", "/api/v1/admin/origins"]
API_STAFF = ["/api/v1/admin/gaps"]


@pytest.fixture(scope="module")
def app_client(tmp_path_factory, indexed_dir, embedder):
    """One app for the module (users: a writer and an owner), so each test only logs in."""
    from kb.web.app import build_services, create_app

    data = tmp_path_factory.mktemp("auth") / "data"
    shutil.copytree(indexed_dir, data, symlinks=True)
    settings = Settings.load(environ={}, articles=ARTICLES, data=data, gap_refresh_minutes=0,
                             allowed_hosts=(TEST_HOST,))
    services = build_services(settings, embedder=embedder)
    auth.add_user(services["db"], "writer@example.com", "writer", PASSWORD)
    auth.add_user(services["db"], "owner@example.com", "owner", PASSWORD)
    with TestClient(create_app(settings, services=services)) as client:
        client.app_settings = settings
        yield client
    services["db"].close()


@pytest.fixture
def client(app_client):
    app_client.cookies.clear()
    db = app_client.app.state["db"]
    db.execute(rate_limits.delete())  # every test starts with no failed logins counted
    app_client.app.state["limiter"] = RateLimiter(db)
    return app_client


def login(client, email: str, password: str = PASSWORD, next: str = "/admin"):
    page = client.get("/admin/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/admin/login", data={"email": email, "password": password, "csrf_token": token, "next": next},
                       follow_redirects=False)


def issued(response) -> str:
    """The kb_admin value a response sets."""
    header = next(c for c in response.headers.get_list("set-cookie") if c.startswith("kb_admin="))
    return header.split(";", 1)[0].split("=", 1)[1].strip('"')


def csrf(client) -> str:
    page = client.get("/admin/gaps")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_every_admin_route_is_covered_here(client):
    paths = {r.path for r in client.app.routes if r.path.startswith(("/admin", "/api/v1/admin"))}
    listed = {re.sub(r"/1(/|$)", r"/{gap_id:int}\1", p) for p in STAFF_GET + STAFF_POST + OWNER_ONLY_GET + API_OWNER + API_STAFF}
    listed = {re.sub(r"/(figures\.csv|daily\.svg|funnel\.svg)$", "/{x}", p) for p in listed}
    listed = {p.replace("/vpn-connect/", "/{slug:str}/").replace("/0123456", "/{revision:str}") for p in listed}
    found = {re.sub(r"\{(name|action):str\}", "{x}", p) for p in paths} - {"/admin/login"}
    listed = {p.replace("/{gap_id:int}/link", "/{gap_id:int}/{x}").replace("/{gap_id:int}/replay", "/{gap_id:int}/{x}")
              .replace("/{gap_id:int}/status", "/{gap_id:int}/{x}") for p in listed}
    assert found <= listed, found - listed


@pytest.mark.parametrize("path", STAFF_GET + OWNER_ONLY_GET)
def test_anonymous_pages_redirect_to_login(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=")


@pytest.mark.parametrize("path", STAFF_POST)
def test_anonymous_posts_redirect_to_login(client, path):
    response = client.post(path, data={"csrf_token": "x"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/admin/login")


@pytest.mark.parametrize("path", API_OWNER + API_STAFF)
def test_anonymous_api_is_401_json(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("path", OWNER_ONLY_GET + API_OWNER)
def test_writers_cannot_see_owner_pages(client, path):
    assert login(client, "writer@example.com").status_code == 303
    assert client.get(path, follow_redirects=False).status_code == 403


@pytest.mark.parametrize("path", ["/admin/gaps", "/admin/gaps/export.csv", "/admin/articles", "/admin/articles/new",
                                  "/admin/articles/vpn-connect/edit", "/admin/articles/vpn-connect/history"] + API_STAFF)
def test_writers_see_the_gap_board(client, path):
    login(client, "writer@example.com")
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/admin/gaps", "/admin/dashboard", "/admin/charts/daily.svg",
                                  "/admin/dashboard/export/daily.csv", "/admin/audit", "/admin/audit.csv",
                                  "/admin/articles"] + API_OWNER + API_STAFF)
def test_owners_see_everything(client, path):
    login(client, "owner@example.com")
    response = client.get(path)
    assert response.status_code == 200
    if path.endswith(".svg"):
        assert response.headers["content-type"].startswith("image/svg+xml") and b"<script" not in response.content
    if path.endswith(".csv"):
        assert response.headers["content-type"].startswith("text/csv")


@pytest.mark.parametrize("path", STAFF_POST)
def test_csrf_less_posts_are_refused(client, path):
    login(client, "owner@example.com")
    assert client.post(path, data={}, follow_redirects=False).status_code == 403
    assert client.post(path, data={"csrf_token": "forged"}, follow_redirects=False).status_code == 403


def test_login_form_needs_its_csrf_token(client):
    client.get("/admin/login")
    response = client.post("/admin/login", data={"email": "owner@example.com", "password": PASSWORD},
                           follow_redirects=False)
    assert response.status_code == 403
    assert "kb_admin" not in client.cookies


def test_a_valid_token_passes(client):
    login(client, "owner@example.com")
    response = client.post("/admin/gaps/refresh", data={"csrf_token": csrf(client)}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/admin/gaps"


def test_login_issues_a_new_session_and_ends_the_old_one(client):
    client.cookies.set("kb_admin", "planted-by-attacker.sig", domain="testserver.local", path="/")
    response = login(client, "owner@example.com", next="/admin/dashboard")
    assert response.status_code == 303 and response.headers["location"] == "/admin/dashboard"
    first = issued(response)
    assert first and first != "planted-by-attacker.sig"
    client.cookies.clear()
    page = client.get("/admin/login")  # a login form loaded in another tab, then submitted while logged in
    client.cookies.set("kb_admin", first, domain="testserver.local", path="/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    second = issued(client.post("/admin/login", data={"email": "owner@example.com", "password": PASSWORD,
                                                      "csrf_token": token}, follow_redirects=False))
    assert second and second != first
    db, settings = client.app.state["db"], client.app_settings
    assert auth.load_session(db, settings, first) is None  # the old session is gone
    assert auth.load_session(db, settings, second).email == "owner@example.com"


def test_cookie_flags(client):
    headers = login(client, "owner@example.com").headers.get_list("set-cookie")
    cookie = next(c for c in headers if c.startswith("kb_admin="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/;" in cookie + ";"
    assert "Secure" not in cookie
    from kb.web.admin import _session_cookie

    secure = _session_cookie(client.app_settings.replace(secure_cookies=True), "v").to_header()
    assert "Secure" in secure and "HttpOnly" in secure


def test_wrong_password_is_401_and_open_redirects_are_ignored(client):
    response = login(client, "owner@example.com", password="wrong password!")
    assert response.status_code == 401 and "Wrong email or password" in response.text
    assert login(client, "owner@example.com", next="https://evil.example/").headers["location"] == "/admin"


def test_logout_invalidates_the_session(client):
    cookie = issued(login(client, "writer@example.com"))
    response = client.post("/admin/logout", data={"csrf_token": csrf(client)}, follow_redirects=False)
    assert response.status_code == 303
    client.cookies.clear()
    client.cookies.set("kb_admin", cookie, domain="testserver.local", path="/")  # a kept copy is worthless
    assert client.get("/admin/gaps", follow_redirects=False).status_code == 303


def test_expired_sessions_are_refused(client):
    login(client, "writer@example.com")
    client.app.state["db"].execute("UPDATE admin_sessions SET expires = 0")
    assert client.get("/admin/gaps", follow_redirects=False).status_code == 303


def test_login_rate_limit_429_per_ip_and_public_endpoints_unaffected(client):
    limit = client.app_settings.rate_login_per_15min
    for _ in range(limit):
        assert login(client, f"nobody{_}@example.com", password="wrong password!").status_code == 401
    assert login(client, "owner@example.com").status_code == 429  # even the right password, from this IP
    assert client.get("/api/v1/healthz").status_code == 200
    assert client.get("/api/v1/suggest", params={"q": "reset my password"}).status_code == 200


def test_login_rate_limit_per_account(tmp_path):
    from kb.storage.database import Database

    db = Database(tmp_path / "kb.db")
    settings = Settings.load(environ={}, data=tmp_path, rate_login_per_15min=3)
    auth.add_user(db, "a@example.com", "writer", PASSWORD)
    limiter = RateLimiter(db)
    for n in range(3):
        with pytest.raises(auth.LoginError):
            auth.authenticate(db, settings, limiter, "a@example.com", "nope nope nope", f"10.0.0.{n}")
    with pytest.raises(RateLimitedError):  # a fourth IP, same account
        auth.authenticate(db, settings, limiter, "A@example.com", PASSWORD, "10.0.0.99")
    db.execute(rate_limits.delete())  # the window ends
    assert auth.authenticate(db, settings, RateLimiter(db), "a@example.com", PASSWORD, "10.0.0.99") > 0


def test_users_passwords_and_secret_key(tmp_path):
    from kb.storage.database import Database

    db = Database(tmp_path / "kb.db")
    settings = Settings.load(environ={}, data=tmp_path)
    uid = auth.add_user(db, " Someone@Example.com ", "owner", PASSWORD)
    row = db.one("SELECT * FROM users WHERE id = :id", {"id": uid})
    assert row["email"] == "someone@example.com" and row["password_hash"].startswith("$argon2id$")
    with pytest.raises(auth.UserExistsError):
        auth.add_user(db, "someone@example.com", "writer", PASSWORD)
    for email, role, password in (("bad", "owner", PASSWORD), ("x@y.z", "admin", PASSWORD), ("x@y.z", "owner", "short")):
        with pytest.raises(ValidationError):
            auth.add_user(db, email, role, password)
    cookie = auth.start_session(db, settings, uid)
    auth.set_password(db, "someone@example.com", "another long password")
    assert auth.load_session(db, settings, cookie) is None  # a password change ends sessions
    assert not (tmp_path / "secret.key").exists()  # the key is in the database, shared by every replica
    key = auth.secret_key(db, settings)
    assert len(key) >= 64 and auth.secret_key(Database(tmp_path / "kb.db"), settings) == key
    assert auth.unsign(b"k", auth.sign(b"k", "abc")) == "abc" and auth.unsign(b"other", auth.sign(b"k", "abc")) is None
    db.execute("UPDATE users SET disabled = 1")
    with pytest.raises(auth.LoginError):
        auth.authenticate(db, settings, RateLimiter(db), "someone@example.com", "another long password", "1.2.3.4")


@pytest.mark.parametrize("forged", ["s_abc.ü", "s_abc.\ud800", "\ud800.abc", "s_ü.abc", ".abc", "abc."])
def test_a_forged_signature_in_any_text_is_refused_not_a_crash(forged):
    # the fuzzer sent these as widget session tokens: compare_digest raised on non-ASCII, a 500
    assert auth.unsign(b"k", forged) is None


def test_cli_user_add_and_passwd(tmp_path):
    from click.testing import CliRunner

    from kb.cli import main
    from kb.storage.database import Database

    runner = CliRunner()
    args = ["user", "add", "new@example.com", "--role", "owner", "--data", str(tmp_path), "--password-stdin"]
    result = runner.invoke(main, args, input=PASSWORD + "\n")
    assert result.exit_code == 0 and "Added owner new@example.com" in result.output
    again = runner.invoke(main, args, input=PASSWORD + "\n")
    assert again.exit_code == 1 and "already exists" in again.output
    short = runner.invoke(main, ["user", "add", "x@example.com", "--role", "writer", "--data", str(tmp_path),
                                 "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    prompted = runner.invoke(main, ["user", "passwd", "new@example.com", "--data", str(tmp_path)],
                             input="a new long password\na new long password\n")
    assert prompted.exit_code == 0, prompted.output
    db = Database(tmp_path / "kb.db")
    settings = Settings.load(environ={}, data=tmp_path)
    assert auth.authenticate(db, settings, RateLimiter(db), "new@example.com", "a new long password", "ip") > 0
