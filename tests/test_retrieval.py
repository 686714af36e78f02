"""Retrieval quality on the bundled KB: held-out user requests, out-of-scope requests, drafts.

The requests live in tests/data/retrieval.yaml. They are paraphrases in the way people type,
never copies of article titles or aliases (checked below), so the hit rate measures retrieval,
not string matching.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kb.content.articles import load_dir
from kb.serving.desk import Desk
from kb.settings import Settings

HERE = Path(__file__).resolve().parent
ARTICLES = HERE.parent / "articles"
DATA = yaml.safe_load((HERE / "data" / "retrieval.yaml").read_text(encoding="utf-8"))
REQUESTS = DATA["requests"]
OUT_OF_SCOPE = DATA["out_of_scope"]
DRAFTS = DATA["drafts"]
MIN_HIT_RATE = 0.9


def expected(request: dict) -> list[str]:
    value = request["expect"]
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def desk(indexed_dir, embedder) -> Desk:
    settings = Settings.load(environ={}, config=indexed_dir / "no-kb.toml", articles=ARTICLES, data=indexed_dir)
    desk = Desk(settings, embedder, db=None)
    desk.load()
    return desk


def ask(desk: Desk, request: dict, limit: int = 3):
    return desk.suggest(request["q"], limit=limit, locale=request.get("locale", "en"), record=False)


def describe(request: dict, answer) -> str:
    shown = ", ".join(f"{i.slug} {i.confidence:.2f}" for i in answer.items) or "nothing"
    verdict = "answered" if answer.answered else "not answered"
    return f"[{request.get('locale', 'en')}] {request['q']!r}: {verdict} (threshold {answer.threshold:.2f}) -> {shown}"


# -- the data set itself ----------------------------------------------------------------------


def test_dataset_is_big_enough_and_points_at_served_articles():
    loaded = load_dir(ARTICLES)
    published = {a.slug for a in loaded.articles if a.published}
    assert len(REQUESTS) >= 45
    assert sum(r.get("locale") == "ru" for r in REQUESTS) >= 12
    assert len(OUT_OF_SCOPE) >= 20
    unknown = [r["q"] for r in REQUESTS if not set(expected(r)) <= published]
    assert unknown == [], "expected slugs must be published articles"
    assert len({r["q"] for r in REQUESTS}) == len(REQUESTS), "duplicate requests"
    ambiguous = [r for r in REQUESTS if len(expected(r)) > 1]
    assert len(ambiguous) <= len(REQUESTS) // 10, "several acceptable answers should stay rare"


def test_requests_are_held_out():
    """No request is an article's title or alias: the aliases are indexed, so that would be cheating."""
    phrases = set()
    for a in load_dir(ARTICLES).articles:
        phrases.add(" ".join(a.title.lower().split()))
        phrases.update(" ".join(alias.lower().split()) for alias in a.aliases)
    copied = [r["q"] for r in REQUESTS + OUT_OF_SCOPE if " ".join(r["q"].lower().split()) in phrases]
    assert copied == []


# -- quality ----------------------------------------------------------------------------------


def test_top3_hit_rate(desk):
    misses, lines = [], []
    for request in REQUESTS:
        answer = ask(desk, request)
        hit = any(item.slug in expected(request) for item in answer.items[:3])
        lines.append(("hit  " if hit else "MISS ") + describe(request, answer))
        if not hit:
            misses.append(f"{describe(request, answer)}; expected {' or '.join(expected(request))}")
    rate = 1 - len(misses) / len(REQUESTS)
    print(f"\ntop-3 hit rate {rate:.3f} over {len(REQUESTS)} requests; misses:\n  " + "\n  ".join(misses))
    assert rate >= MIN_HIT_RATE, f"top-3 hit rate {rate:.3f} < {MIN_HIT_RATE}:\n" + "\n".join(lines)


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_top3_hit_rate_per_locale(desk, locale):
    """Each language on its own clears the bar: a strong English set must not hide weak Russian."""
    subset = [r for r in REQUESTS if r.get("locale", "en") == locale]
    answers = [(r, ask(desk, r)) for r in subset]
    misses = [describe(r, a) for r, a in answers if not any(i.slug in expected(r) for i in a.items[:3])]
    rate = 1 - len(misses) / len(subset)
    assert rate >= MIN_HIT_RATE, f"{locale} top-3 hit rate {rate:.3f}; misses:\n" + "\n".join(misses)


def test_results_are_in_the_requested_locale(desk):
    wrong = []
    for request in REQUESTS:
        answer = ask(desk, request)
        if answer.items and not answer.fallback and answer.items[0].locale != request.get("locale", "en"):
            wrong.append(describe(request, answer))
    assert wrong == []


def test_most_in_scope_requests_are_answered(desk):
    """Saying "no answer" to everything would pass the out-of-scope test: keep the threshold honest.

    The shipped threshold is fitted on the public English dev sets to hold false answers to 10%,
    so it is deliberately strict on these sloppy, partly Russian requests: 0.74 measured on
    2026-11-27. A threshold that refused everything would score 0.
    """
    unanswered = [describe(r, a) for r in REQUESTS if not (a := ask(desk, r)).answered]
    rate = 1 - len(unanswered) / len(REQUESTS)
    assert rate >= 0.7, f"only {rate:.2f} of in-scope requests answered:\n" + "\n".join(unanswered)


def test_out_of_scope_requests_are_not_answered(desk):
    results = [(r, ask(desk, r)) for r in OUT_OF_SCOPE]
    answered = [describe(r, a) for r, a in results if a.answered]
    report = "\n".join(("FAIL " if a.answered else "ok   ") + describe(r, a) for r, a in results)
    assert answered == [], f"{len(answered)}/{len(results)} out-of-scope requests were answered:\n{report}"


def test_confidences_are_probabilities_and_sorted(desk):
    for request in REQUESTS[:10] + OUT_OF_SCOPE[:5]:
        items = ask(desk, request, limit=5).items
        assert all(0.0 <= i.confidence <= 1.0 for i in items), describe(request, ask(desk, request))
        assert items and items[0].passage and items[0].url.startswith(f"/articles/{items[0].slug}")


@pytest.mark.parametrize("request_", DRAFTS, ids=[d["q"] for d in DRAFTS])
def test_drafts_are_never_served(desk, request_):
    answer = ask(desk, request_, limit=10)
    assert request_["not"] not in [i.slug for i in answer.items], describe(request_, answer)
    assert request_["not"] not in desk.library.articles
