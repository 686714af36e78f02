"""The widget's budget and the rules that keep it safe to embed, checked on its source."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

WIDGET = Path(__file__).resolve().parents[1] / "widget" / "kb-widget.js"
BUDGET = 10 * 1024  # bytes, gzip -9


def source() -> str:
    return WIDGET.read_text(encoding="utf-8")


def code() -> str:
    """The source without its comments (which may name what the code avoids)."""
    text = re.sub(r"/\*.*?\*/", "", source(), flags=re.S)
    return re.sub(r"(?m)^\s*//.*$|\s//\s.*$", "", text)


def test_gzipped_size_is_within_budget():
    """Measured on what the server sends (the readable source, minified by kb/web/widget.py)."""
    from kb.web.widget import served_script

    served = served_script()
    size = len(gzip.compress(served, compresslevel=9, mtime=0))
    assert size <= BUDGET, f"kb-widget.js is {size} bytes gzipped as served; the budget is {BUDGET}"
    assert served.startswith(b"/*! kb-widget") and len(served) < len(WIDGET.read_bytes())


def test_no_markup_parsing_or_eval():
    js = code()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "DOMParser", "createContextualFragment"):
        assert sink not in js, f"{sink} in kb-widget.js"
    assert not re.search(r"setTimeout\(\s*['\"`]", js), "setTimeout with a string is eval"


def test_no_globals_and_guarded_definition():
    js = code().strip()
    assert js.startswith("(function () {") and js.endswith("})();"), "not wrapped in an IIFE"
    assert "customElements.get('kb-widget')" in js
    assert not re.search(r"\b(window|W|self|globalThis)\.\w+\s*=(?!=)", js), "assigns a global"


def test_events_bubble_out_of_the_shadow_root():
    js = code()
    assert "new CustomEvent(name, {bubbles: true, composed: true, detail})" in js
    emitted = set(re.findall(r"_emit\('(kb-[a-z-]+)'", js)) | set(re.findall(r"'(kb-(?:open|close))'", js))
    assert emitted == {"kb-open", "kb-close", "kb-suggestions", "kb-suggestion-open", "kb-feedback",
                       "kb-ticket-created", "kb-error"}, emitted


def test_every_event_and_theming_variable_is_documented():
    readme = (WIDGET.parent / "README.md").read_text(encoding="utf-8")
    js = code()
    for name in set(re.findall(r"--kb-[a-z-]+", js)):
        assert f"`{name}`" in readme, f"{name} is not documented in widget/README.md"
    for name in set(re.findall(r"'(kb-[a-z-]+)'", js)) - {"kb-widget", "kb-session"}:
        assert f"`{name}`" in readme, f"{name} is not documented in widget/README.md"
    for name in set(re.findall(r"_track\('([a-z_]+)'", js)):
        assert f"`{name}`" in readme, f"funnel event {name} is not documented in widget/README.md"
