"""mypy over kb/ and search/ with the settings in pyproject.toml ([tool.mypy]): zero errors."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_errors(monkeypatch):
    from mypy import api

    monkeypatch.chdir(ROOT)  # [tool.mypy] files are relative to the project root
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-incremental",
                                      "--cache-dir", "/dev/null"])
    assert status == 0, stdout + stderr
    assert "Success: no issues found" in stdout
