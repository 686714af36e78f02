"""The widget typed into like a person types: uneven keys, pauses after words, backspace, paste,
Enter, IME composition, Russian. The person's view (no form while suggestions are confident, the
form after a settled miss, the prefill equal to the final text) is sampled every 25 ms in the page;
the owner's view is what the server counts from the same session.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from kb.storage.settle import SETTLE_SECONDS, explicit_ends, settle

pytestmark = pytest.mark.browser

expect: Any
try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture explains (and fails in CI)
    expect = None

ANSWERED = "my laptop screen is cracked after I dropped it"
MISS = "please order a birthday cake for the team party on friday"
RUSSIAN = "не могу подключиться к впн"

# Before any page script: every input event, and what the widget shows, every 25 ms.
RECORDER = """
window.__inputs = [];
window.__samples = [];
document.addEventListener('input', () => __inputs.push(performance.now()), true);
setInterval(() => {
  const host = document.querySelector('kb-widget'), root = host && host.shadowRoot;
  const $ = id => root && root.getElementById(id);
  if (!$('q')) return;
  const shown = e => !!e && !e.hidden && e.getClientRects().length > 0;
  __samples.push({t: performance.now(), q: $('q').value, form: shown($('tf')),
    options: shown($('lb')) ? root.querySelectorAll('#lb [role=option]').length : 0,
    status: $('st').textContent, subject: $('f-subject').value, body: $('f-body').value});
}, 25);
"""


def w(page: Any, selector: str) -> Any:
    return page.locator(f"kb-widget {selector}")


def type_like_a_person(page: Any, text: str, seed: int, pause: float = 0.7) -> None:
    """60-140 ms between keys and `pause` seconds after every word, as people pause to think."""
    rng = random.Random(seed)
    for i, word in enumerate(text.split(" ")):
        if i:
            page.keyboard.type(" ")
            time.sleep(rng.uniform(0.06, 0.14))
        for ch in word:
            page.keyboard.type(ch)
            time.sleep(rng.uniform(0.06, 0.14))
        time.sleep(pause)


def open_inline(page: Any, demo_server: Any) -> None:
    page.add_init_script(RECORDER)
    page.goto(demo_server.url("/inline"))
    w(page, "#q").click()


def samples(page: Any) -> list[dict]:
    return page.evaluate("__samples")


def last_input(page: Any) -> float:
    return page.evaluate("Math.max(...__inputs)")


def never_a_form_under_suggestions(rows: list[dict]) -> None:
    both = [r for r in rows if r["form"] and r["options"]]
    assert not both, f"the form was open under confident suggestions: {both[:3]}"


def no_form_while_typing(rows: list[dict], until: float) -> None:
    early = [r for r in rows if r["form"] and r["t"] < until]
    assert not early, f"the form appeared while the person was still typing: {early[:3]}"


def server_requests(db: Any, sid: str, now: float | None = None) -> list[str]:
    """What the owner's figures count for this session: its settled requests (kb/storage/settle.py)."""
    rows = [dict(r) for r in db("SELECT id, ts, session, query, answered, kind FROM requests WHERE session = ?", (sid,))]
    events = [dict(r) for r in db("SELECT type, request_id, data FROM events WHERE session = ?", (sid,))]
    tickets = [dict(r) for r in db("SELECT request_id FROM tickets WHERE session = ?", (sid,))]
    return [s.query for s in settle(rows, explicit_ends(events, tickets), now=now or time.time())]


def session_id(page: Any) -> str:
    """The session the widget's token names (`s_<id>.<signature>`, signed by POST /api/v1/session)."""
    token = page.evaluate("sessionStorage.getItem('kb-session')")
    assert token and token.startswith("s_"), token
    return token.rpartition(".")[0]


def settled_view(page: Any) -> dict:
    """Wait until the request has settled (idle) and the widget is quiet; return its last state."""
    time.sleep(SETTLE_SECONDS + 1.0)
    return samples(page)[-1]


def test_typing_an_answered_request_with_pauses_never_shows_the_form(page, demo_server, db):
    open_inline(page, demo_server)
    type_like_a_person(page, ANSWERED, seed=1)
    end = last_input(page)
    final = settled_view(page)
    rows = samples(page)
    never_a_form_under_suggestions(rows)
    no_form_while_typing(rows, end)
    assert final["q"] == ANSWERED and final["options"] > 0, final
    assert not final["form"]
    assert not any("No matching" in r["status"] for r in rows if r["t"] < end), "no-match shown mid-sentence"
    assert server_requests(db, session_id(page)) == [ANSWERED]


def test_a_settled_miss_opens_the_form_with_the_final_text(page, demo_server, db):
    open_inline(page, demo_server)
    type_like_a_person(page, MISS, seed=2)
    end = last_input(page)
    expect(w(page, "#tf")).to_be_visible()
    rows = samples(page)
    no_form_while_typing(rows, end)
    opened = next(r for r in rows if r["form"])
    assert opened["t"] - end >= SETTLE_SECONDS * 1000 - 50, "the form came before the request had settled"
    expect(w(page, "#f-subject")).to_have_value(MISS)
    expect(w(page, "#f-body")).to_have_value(MISS)
    expect(w(page, "#st")).to_have_text("No matching articles")
    expect(w(page, "#q")).to_be_focused()
    time.sleep(0.5)
    assert server_requests(db, session_id(page)) == [MISS]


def test_backspace_then_more_words_keeps_the_prefill_current(page, demo_server, db):
    open_inline(page, demo_server)
    type_like_a_person(page, "please order a birthday cakr", seed=3)
    page.keyboard.press("Backspace")
    time.sleep(0.3)
    type_like_a_person(page, "e for the team party on friday", seed=4)
    expect(w(page, "#tf")).to_be_visible()
    expect(w(page, "#f-body")).to_have_value(MISS)
    # then on, past a settled miss: the form follows, and goes away under confident suggestions
    w(page, "#q").fill("")
    type_like_a_person(page, "outlook k", seed=5, pause=SETTLE_SECONDS + 0.8)  # a long pause mid-word
    type_like_a_person(page, "eeps asking for my password", seed=6)
    final = settled_view(page)
    rows = samples(page)
    never_a_form_under_suggestions(rows)
    stale = [r for r in rows if r["form"] and r["q"].strip() and r["body"] != r["q"].strip()]
    assert not stale, f"a form with a stale prefill: {stale[:3]}"
    assert final["q"] == "outlook keeps asking for my password" and final["options"] and not final["form"], final
    time.sleep(0.5)
    assert server_requests(db, session_id(page)) == [MISS, "outlook keeps asking for my password"]


def test_paste_then_enter_settles_at_once(page, demo_server, db):
    open_inline(page, demo_server)
    page.keyboard.insert_text(MISS)  # what a paste does to the field
    expect(w(page, "#tf")).to_be_visible()
    expect(w(page, "#f-subject")).to_have_value(MISS)
    w(page, "#q").fill("")
    text = "the coffee grinder in my flat makes a funny noise"
    page.keyboard.insert_text(text)
    page.keyboard.press("Enter")
    start = time.monotonic()
    expect(w(page, "#f-body")).to_have_value(text)
    expect(w(page, "#tf")).to_be_visible()
    assert time.monotonic() - start < SETTLE_SECONDS + 5  # Enter does not wait for the pause (a busy CI adds latency)
    sid = session_id(page)
    enter = [json.loads(r["data"]) for r in db("SELECT data FROM events WHERE session = ? AND type = 'request_settled'",
                                               (sid,))]
    assert {"text": text, "by": "enter"}.items() <= enter[-1].items(), enter
    assert server_requests(db, sid) == [MISS, text]


def test_nothing_is_asked_or_settled_while_an_input_method_composes(page, demo_server, db):
    open_inline(page, demo_server)
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/api/v1/suggest" in r.url else None)
    cdp = page.context.new_cdp_session(page)
    for part in ("ф", "фо", "фото", "фотоаппарат"):  # a word being composed, slower than the settle time
        cdp.send("Input.imeSetComposition", {"text": part, "selectionStart": len(part), "selectionEnd": len(part)})
        time.sleep(0.6)
    composing = samples(page)[-1]
    assert composing["q"] == "фотоаппарат", composing  # the input method did write into the box
    assert calls == [] and not composing["form"] and not composing["status"], calls
    cdp.send("Input.insertText", {"text": "фотоаппарат"})  # commit: compositionend
    type_like_a_person(page, " не включается после падения", seed=7)
    final = settled_view(page)
    assert final["q"] == "фотоаппарат не включается после падения"
    rows = samples(page)
    never_a_form_under_suggestions(rows)
    if not final["options"]:
        assert final["form"] and final["body"] == final["q"]
    assert server_requests(db, session_id(page)) == ["фотоаппарат не включается после падения"]


def test_russian_typed_word_by_word_is_one_request(page, demo_server, db):
    open_inline(page, demo_server)
    type_like_a_person(page, RUSSIAN, seed=8)
    end = last_input(page)
    final = settled_view(page)
    rows = samples(page)
    never_a_form_under_suggestions(rows)
    no_form_while_typing(rows, end)
    assert final["q"] == RUSSIAN
    if not final["options"]:
        assert final["form"] and final["body"] == RUSSIAN
    assert server_requests(db, session_id(page)) == [RUSSIAN]


def settled_events(db: Any, sid: str) -> list[dict]:
    return [json.loads(r["data"]) for r in db("SELECT data FROM events WHERE session = ? AND type = 'request_settled'"
                                             " ORDER BY ts", (sid,))]


def test_a_slow_typist_who_pauses_past_the_settle_time_is_one_request(page, demo_server, db):
    """Stops mid-sentence for longer than the settle time, twice; the widget learns to wait."""
    open_inline(page, demo_server)
    type_like_a_person(page, "please order a birthday cake", seed=9)
    time.sleep(SETTLE_SECONDS + 1.0)  # stops to think
    expect(w(page, "#tf")).to_be_visible(timeout=1)  # a settled miss, by the stated rule: the form, with the text so far
    expect(w(page, "#f-body")).to_have_value("please order a birthday cake")
    page.keyboard.type(" ")
    resumed = last_input(page)
    type_like_a_person(page, "for the team party", seed=10)
    time.sleep(SETTLE_SECONDS + 0.3)  # with the 0.7 s after the word: 2.5 s again, past the settle time
    second_pause = samples(page)
    page.keyboard.type(" ")
    type_like_a_person(page, "on friday", seed=11)
    expect(w(page, "#tf")).to_be_visible(timeout=SETTLE_SECONDS * 4 * 1000 + 5000)
    expect(w(page, "#f-body")).to_have_value(MISS)
    expect(w(page, "#f-subject")).to_have_value(MISS)
    # typing on closed the miss's form, and the longer wait kept it closed through the second pause
    assert not [r for r in second_pause if r["t"] > resumed and r["form"]], "the form came back mid-sentence"
    stale = [r for r in samples(page) if r["form"] and r["body"] != r["q"].strip()]
    assert not stale, f"a form with a stale prefill: {stale[:3]}"
    time.sleep(0.5)
    sid = session_id(page)
    assert [e["text"] for e in settled_events(db, sid)] == ["please order a birthday cake", MISS]
    assert server_requests(db, sid) == [MISS]  # the paused prefix folded into the whole request


def test_a_phone_keyboard_composing_each_word_is_one_request(page, demo_server, db):
    """Android keyboards compose every word and commit it at the space; the last word stays composed."""
    open_inline(page, demo_server)
    cdp = page.context.new_cdp_session(page)
    text = "не приходят письма на телефон"
    for i, word in enumerate(text.split(" ")):
        for n in range(1, len(word) + 1):
            cdp.send("Input.imeSetComposition", {"text": word[:n], "selectionStart": n, "selectionEnd": n})
            time.sleep(0.09)
        if i < len(text.split(" ")) - 1:
            cdp.send("Input.insertText", {"text": word})  # the space commits the word
            cdp.send("Input.insertText", {"text": " "})
            time.sleep(0.7)
    time.sleep(SETTLE_SECONDS + 1.0)  # the last word is still being composed: nothing settles
    composing = samples(page)[-1]
    assert composing["q"] == text and not composing["form"] and "No matching" not in composing["status"]
    sid = session_id(page)
    assert not any(e["text"] == text for e in settled_events(db, sid))
    cdp.send("Input.insertText", {"text": "телефон"})  # committed (a tap on the suggestion strip)
    final = settled_view(page)
    never_a_form_under_suggestions(samples(page))
    assert final["q"] == text
    if not final["options"]:
        assert final["form"] and final["body"] == text
    assert server_requests(db, sid) == [text]


def test_autocomplete_replacing_the_text_after_a_pause_is_one_request(page, demo_server, db):
    """A keyboard's or a password manager's completion replaces the whole text in one input event."""
    open_inline(page, demo_server)
    type_like_a_person(page, "outlook keeps", seed=12, pause=SETTLE_SECONDS + 1.5)
    full = "Outlook keeps asking for my password"
    w(page, "#q").evaluate("(q, v) => { q.select(); document.execCommand('insertText', false, v); }", full)
    final = settled_view(page)
    assert final["q"] == full and final["options"] and not final["form"], final
    never_a_form_under_suggestions(samples(page))
    assert server_requests(db, session_id(page)) == [full]


# -- the owner's figures from a fresh server -------------------------------------------------------

PARAPHRASES = [MISS, "can someone order a birthday cake for our team party", "birthday cake for the team party please"]


@pytest.fixture(scope="module")
def fresh_kb(tmp_path_factory, indexed_dir, demo_site) -> Any:
    """`kb serve` on a data dir with the index and nothing else: no request has ever been logged."""
    import shutil
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from servers import start_server, stop_server

    data = tmp_path_factory.mktemp("fresh") / "data"
    shutil.copytree(indexed_dir, data, symlinks=True)
    for name in ("kb.db", "kb.db-wal", "kb.db-shm"):
        (data / name).unlink(missing_ok=True)
    proc, url = start_server(data, {"KB_CONFIG": str(data / "no-kb.toml"), "KB_CORS_ORIGINS": demo_site.origin,
                                    "KB_GAP_REFRESH_MINUTES": "0"}, inherit_kb=False)
    try:
        yield url, data
    finally:
        stop_server(proc)


def kb_cli(data: Any, *args: str) -> str:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    done = subprocess.run([sys.executable, "-m", "kb", *args, "--data", str(data)], capture_output=True, text=True,
                          timeout=600, env={**env, "KB_CONFIG": str(data / "no-kb.toml")})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_fresh_server_counts_one_request_per_typed_request(browser, fresh_kb, demo_site):
    url, data = fresh_kb
    host = demo_site.add("/fresh", f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Fresh</title></head>
<body><kb-widget></kb-widget><script src="{url}/widget/kb-widget.js" async></script></body></html>""")
    for i, text in enumerate(PARAPHRASES):  # three visitors, three browser sessions
        context = browser.new_context()
        page = context.new_page()
        page.add_init_script(RECORDER)
        page.goto(host)
        page.locator("kb-widget #q").click()
        type_like_a_person(page, text, seed=20 + i)
        expect(page.locator("kb-widget #tf")).to_be_visible()  # each is a miss: the form, after the settle
        context.close()
        if i == 0:
            time.sleep(3)  # "a few seconds after typing stops"
            figures = json.loads(kb_cli(data, "stats", "--json"))
            assert figures["figures"]["requests"] == 1, figures["figures"]
            assert [r["request"] for r in figures["top_requests"]] == [MISS]
    time.sleep(3)
    out = json.loads(kb_cli(data, "stats", "--json"))
    finals = sorted(t.lower() for t in PARAPHRASES)
    assert out["figures"]["requests"] == 3 and out["figures"]["unsuccessful_no_result"] == 3, out["figures"]
    assert sorted(r["request"] for r in out["top_requests"]) == finals
    assert out["figures"]["sessions_with_request"] == 3
    kb_cli(data, "gaps", "--refresh")
    import sqlite3

    conn = sqlite3.connect(data / "kb.db")
    try:
        missed = sorted(t.lower() for (t,) in conn.execute("SELECT text FROM gap_misses"))
        runs = conn.execute("SELECT misses FROM gap_runs ORDER BY id DESC LIMIT 1").fetchone()
        logged = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
    finally:
        conn.close()
    assert runs == (3,), runs  # three misses clustered: the typed requests, no prefix among them
    assert set(missed) <= set(finals), missed
    assert logged > 3  # the raw log keeps every call made while typing


def test_contact_modes_and_which_wins(page, demo_server):
    url = demo_server.add("/modes", """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Modes</title></head>
<body><kb-widget id="server"></kb-widget><kb-widget id="first" contact-mode="ask-first"></kb-widget>
<kb-widget id="old" contact-only-after-query="false" contact-mode="self-service"></kb-widget>
<script src="{kb}/widget/kb-widget.js" async></script></body></html>""")
    page.goto(url)
    server, first, old = (page.locator(f"#{i}") for i in ("server", "first", "old"))
    # the server's KB_CONTACT_MODE (self-service by default): contact only after a first request
    expect(server.locator("#ct")).to_be_hidden()
    assert server.evaluate("e => [e.contactMode, e.contactOnlyAfterQuery]") == ["self-service", True]
    # ask-first: a button above the search box from the start
    expect(first.locator("#ct")).to_be_visible()
    assert first.locator("#ct").evaluate("c => c.nextElementSibling.id === 'sf' && c.className === 'pri'")
    # contact-mode wins over the older attribute on the same element
    expect(old.locator("#ct")).to_be_hidden()
    old.evaluate("e => e.removeAttribute('contact-mode')")
    expect(old.locator("#ct")).to_have_text("Contact us")  # contact-only-after-query="false": neutral
    # after a settled request, self-service offers it too, even under confident suggestions
    server.locator("#q").fill("outlook keeps asking for my password")
    expect(server.locator("[role=option]").first).to_be_visible()
    expect(server.locator("#ct")).to_have_text("I still need help", timeout=5000)
    expect(server.locator("#tf")).to_be_hidden()
    server.locator("#ct").click()
    expect(server.locator("#tf")).to_be_visible()
    expect(server.locator("#f-subject")).to_have_value("outlook keeps asking for my password")
    # every length limit of the form is the server's (GET /api/v1/widget/config), none the widget's own
    import httpx

    limits = httpx.get(demo_server.kb + "/api/v1/widget/config").json()["limits"]
    shown = {n: server.locator(f"#f-{n}").evaluate("e => e.maxLength") for n in ("name", "email", "subject", "body")}
    assert shown == {n: limits[n] for n in shown}, (shown, limits)
