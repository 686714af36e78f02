"""`kb bench --quick`: runs end to end (real build, real `kb serve`) and reports every figure."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kb.cli import main

FIGURES = {
    "build": ("passages", "chunks", "seconds", "cpu_seconds", "embed_seconds", "passages_per_s", "reindex_one_s"),
    "in_process": ("suggest", "suggest_uncached", "floor", "cache_hit_rate"),
    "http": ("cold_start_s", "one_client", "many_clients", "server_rss_mb"),
    "ratios": ("http1_p50_over_floor", "inproc_p50_over_fts5", "http1_p50_over_fts5"),
    "headline": ("http1_p95_ms", "http16_rps", "http16_errors", "http1_p50_over_floor",
                 "build_passages_per_s", "reindex_one_s", "server_rss_mb", "cold_start_s"),
}


def test_quick_bench_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--quick", "--sizes", "25", "--requests", "20", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "HTTP 16 clients req/s" in result.output and "SQLite FTS5" in result.output
    report = json.loads(out.read_text())
    assert {"cpu", "cores", "ram_gb", "python", "torch", "onnxruntime"} <= set(report["machine"])
    size = report["sizes"]["25"]
    assert size["articles"] == 25 and size["build"]["passages"] > 25
    for section, keys in FIGURES.items():
        missing = [k for k in keys if size[section].get(k) is None]
        assert missing == [], f"{section} lacks {missing}"
    for phase in ("one_client", "many_clients"):
        stats = size["http"][phase]
        assert stats["n"] > 0 and stats["p50"] > 0 and stats["errors"] == 0 and stats["rps"] > 0
    assert size["http"]["many_clients"]["clients"] == 16
    assert size["build"]["reindex_embedded"] == 1  # only the changed article was re-embedded
    assert size["fts5"]["n"] > 0 and size["in_process"]["floor"]["p50"] > 0


def test_the_build_and_the_server_use_one_model(tmp_path, monkeypatch):
    """KB_MODEL (or --model) reaches both the in-process build and the `kb serve` child.

    Before, the build always used the default model while the child inherited KB_MODEL, so with
    another model set the server re-embedded the whole KB on start and the bench timed out.
    """
    import subprocess

    import kb.measure.bench as bench
    from kb.settings import Settings

    seen = {}
    monkeypatch.setattr(bench, "run", lambda options, log: seen.setdefault("options", options) and {})
    monkeypatch.setattr(bench, "table", lambda report: "")
    result = CliRunner().invoke(main, ["bench", "--sizes", "25"], env={"KB_MODEL": str(tmp_path / "model")})
    assert result.exit_code == 0, result.output
    assert seen["options"].model == str(tmp_path / "model")

    def popen(cmd, env, **kwargs):
        seen["env"] = env
        raise OSError("not started in this test")

    monkeypatch.setenv("KB_MODEL", "some-other-model")
    monkeypatch.setattr(subprocess, "Popen", popen)
    settings = Settings.load(environ={}, data=tmp_path, model=str(tmp_path / "model"))
    try:
        bench.start_server(settings, bench.BenchOptions())
    except OSError:
        pass
    assert seen["env"]["KB_MODEL"] == str(tmp_path / "model")
