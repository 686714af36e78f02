"""Settled requests and help-center sessions, from rows: kb/storage/settle.py."""

from __future__ import annotations

import unicodedata

from kb.storage.settle import CONTINUE_SECONDS, SETTLE_SECONDS, Sessions, explicit_ends, extends, settle


def rows(session: str, texts: list[str], times: list[float], kind: str = "suggest") -> list[dict]:
    return [{"id": f"{session}{i}", "ts": t, "session": session, "query": q, "answered": 1, "kind": kind}
            for i, (q, t) in enumerate(zip(texts, times))]


def test_extension_joins_after_a_pause_and_a_new_text_after_a_pause_does_not():
    typed = rows("a", ["vpn", "vpn keeps", "vpn keeps dropping", "printer"], [0, 4, 9, 20])
    assert [s.query for s in settle(typed, set())] == ["vpn keeps dropping", "printer"]
    assert settle(typed, set())[0].ids == ("a0", "a1", "a2") and settle(typed, set())[0].started == 0


def test_quick_changes_join_and_explicit_ends_split():
    quick = rows("a", ["cake", "birthday cake for friday"], [0, SETTLE_SECONDS - 0.1])
    assert len(settle(quick, set())) == 1
    assert [s.query for s in settle(quick, {"a0"})] == ["cake", "birthday cake for friday"]


def test_portal_searches_and_rows_without_a_session_stand_alone():
    searches = rows("p", ["vpn", "vpn keeps dropping"], [0, 0.5], kind="search")
    assert len(settle(searches, set())) == 2
    anonymous = [{"id": f"x{i}", "ts": i, "session": "", "query": "vpn", "answered": 0, "kind": "suggest"}
                 for i in range(3)]
    assert len(settle(anonymous, set())) == 3


def test_a_burst_younger_than_the_settle_time_is_still_being_typed():
    typing = rows("a", ["my", "my laptop"], [100, 101])
    assert settle(typing, set(), now=101.5) == []
    assert len(settle(typing, set(), now=101 + SETTLE_SECONDS)) == 1
    assert len(settle(typing, {"a1"}, now=101.1)) == 1  # Enter: settled at once


def test_a_new_help_center_session_starts_a_new_request_even_when_it_extends():
    later = rows("a", ["vpn", "vpn error 809"], [0, 3600])
    assert len(settle(later, set(), session_idle=1800)) == 2


def test_explicit_ends_come_from_people_not_timers():
    events = [
        {"type": "request_settled", "request_id": "r1", "data": '{"by": "enter"}'},
        {"type": "request_settled", "request_id": "r2", "data": '{"by": "idle"}'},
        {"type": "ticket_started", "request_id": "r3", "data": '{"by": "miss"}'},
        {"type": "ticket_started", "request_id": "r4", "data": {"by": "contact"}},
        {"type": "suggestion_opened", "request_id": "r5", "data": "{}"},
        {"type": "feedback", "request_id": "", "data": "{}"},
        {"type": "request_settled", "request_id": "r6", "data": "not json"},
    ]
    assert explicit_ends(events, [{"request_id": "r7"}, {"request_id": ""}]) == {"r1", "r4", "r5", "r7"}


def test_extends_ignores_case_and_spacing():
    assert extends("Outlook  k", "outlook keeps asking") and extends("vpn", "VPN")
    assert not extends("outlook keeps as", "outlook keep") and not extends("", "x")


def test_extends_forgives_a_corrected_word_but_not_a_replaced_one():
    assert extends("my laptop sceen", "my laptop screen is cracked")  # a phone's autocorrect after the pause
    assert extends("не могу подключится", "не могу подключиться к впн")
    assert extends("outlook keeps askng", "outlook keeps asking for my password")
    assert not extends("printer offline", "printer jammed again")  # the last word replaced: a new request
    assert not extends("vpn", "printer") and not extends("my", "mu laptop")  # two letters are too few to correct
    assert extends("パスワード", "パスワードを忘れた")  # no spaces between words
    decomposed = unicodedata.normalize("NFD", "мой")  # a keyboard that sends й as и + breve
    assert extends(decomposed, "Мой ноутбук не включается")


def test_a_slow_typist_is_one_request_whatever_the_pauses_within_the_limit():
    words = "my laptop screen is cracked after I dropped it".split()
    texts = [" ".join(words[:i + 1]) for i in range(len(words))]
    for pause in (2.0, 8.0, 45.0, CONTINUE_SECONDS - 1):
        typed = rows("a", texts, [i * pause for i in range(len(texts))])
        assert [s.query for s in settle(typed, set(), now=10_000)] == [texts[-1]], pause


def test_a_prefix_left_longer_than_the_limit_is_a_request_of_its_own():
    typed = rows("a", ["vpn", "vpn keeps dropping"], [0, CONTINUE_SECONDS + 1])
    assert [s.query for s in settle(typed, set())] == ["vpn", "vpn keeps dropping"]


def test_a_paused_prefix_counts_until_the_next_text_folds_it():
    typed = rows("a", ["my laptop", "my laptop screen is cracked"], [0, 20])
    assert [s.query for s in settle(typed[:1], set(), now=10)] == ["my laptop"]  # paused: settled for now
    assert [s.query for s in settle(typed, set(), now=30)] == ["my laptop screen is cracked"]


def test_starting_over_after_a_pause_is_a_new_request():
    replaced = rows("a", ["printer offline", "printer jammed", "the coffee machine leaks"], [0, 5, 12])
    assert [s.query for s in settle(replaced, set())] == ["printer offline", "printer jammed", "the coffee machine leaks"]


def test_sessions_cut_at_idle_gaps():
    s = Sessions([("a", 0), ("a", 600), ("a", 3000), ("b", 10)], idle=1800)
    assert s.of("a", 0) == s.of("a", 600) == "a#0" and s.of("a", 3000) == "a#1" and s.of("b", 10) == "b#0"
    assert sorted(s.all()) == ["a#0", "a#1", "b#0"] and s.of("", 5) == ""
