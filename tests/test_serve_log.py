"""What an operator sees on a first `kb serve`: what it is doing, progress while it indexes, the
URL when it is ready, and none of the libraries' own warnings unless asked for."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from servers import start_server, stop_server

NOISE = ("TracerWarning", "torch_dtype", "Saving the exported ONNX model", "Traceback")
ARTICLE = "---\ntitle: {title}\nslug: {slug}\ncategory: network\nlocale: en\nstatus: published\nupdated: 2026-01-01\n---\n{body}\n"


def test_first_serve_reports_progress_and_hides_library_noise(tmp_path):
    articles = tmp_path / "articles"
    articles.mkdir()
    for n in range(3):
        (articles / f"a{n}.md").write_text(ARTICLE.format(title=f"VPN guide {n}", slug=f"vpn-{n}",
                                                          body=f"## Connect\nOpen the VPN client {n}.\n"))
    data = tmp_path / "data"
    data.mkdir()
    home = tmp_path / "home"  # an empty model cache: the one-off ONNX export happens in this run
    home.mkdir()
    proc, base = start_server(data, {"KB_ARTICLES": str(articles), "KB_LOG_LEVEL": "info", "HOME": str(home)})
    stop_server(proc)
    log = next(data.glob("server-*.log")).read_text()
    assert "indexing the articles in" in log and "texts embedded: 0 of" in log, log
    assert "(100%)" in log and "indexed 3 articles" in log, log
    assert f"kb is ready: 3 articles; help center at http://127.0.0.1:{base.rsplit(':', 1)[1]}/" in log, log
    assert list((home / ".cache" / "kb").glob("onnx-*")), "the export did not run: the test saw no noise to hide"
    for noise in NOISE:
        assert noise not in log, log


def test_verbose_or_debug_lets_library_warnings_through(monkeypatch):
    from kb import logs

    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    with warnings.catch_warnings():
        logs.configure("info")
        assert logging.getLogger("transformers").level == logging.ERROR
        assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    with warnings.catch_warnings():
        logs.configure("info", verbose=True)
        assert logging.getLogger("transformers").level == logging.NOTSET
        assert "TRANSFORMERS_VERBOSITY" not in os.environ
    logs.configure("info")
