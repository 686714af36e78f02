"""The `kb` command line, driven through click's CliRunner with the session's real model."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kb.cli import main

GOOD = "---\ntitle: {title}\nslug: {slug}\ncategory: test\nlocale: en\nstatus: published\nupdated: 2026-01-01\n---\n{body}\n"


def walk(group: click.Group, prefix: tuple[str, ...] = ()):
    """Every (path, command) under a group, subcommands of nested groups included."""
    for name, command in sorted(group.commands.items()):
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from walk(command, prefix + (name,))


COMMANDS = list(walk(main))


@pytest.fixture
def runner(tmp_path, monkeypatch, embedder):
    """A CliRunner in an empty directory (no kb.toml, no ./data), reusing the loaded model."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("kb.content.indexer.make_embedder", lambda settings: embedder)
    for name in ("KB_DATA", "KB_ARTICLES", "KB_CONFIG", "KB_MODEL", "KB_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in main.commands:
        assert name in result.output
    assert {"index", "search", "serve"} <= set(main.commands)


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_each_command_has_help_and_a_docstring(path, command):
    assert (command.callback.__doc__ or "").strip(), f"kb {' '.join(path)} has no docstring"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    first_line = " ".join(command.callback.__doc__.strip().splitlines()[0].split())
    assert first_line in " ".join(result.output.split())
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"kb {' '.join(path)} {param.opts[0]} has no help"


def test_index_reports_summary_and_skipped_files(runner, tmp_path):
    articles = tmp_path / "arts"
    articles.mkdir()
    (articles / "ok.md").write_text(GOOD.format(title="Clear a paper jam", slug="paper-jam", body="Open tray 2."))
    (articles / "draft.md").write_text(
        GOOD.format(title="Draft", slug="draft-one", body="Not yet.").replace("published", "draft"))
    (articles / "bad.md").write_text("---\ntitle: Broken\nslug: [oops\n  x: y\n---\nbody\n")
    result = runner.invoke(main, ["index", "--articles", str(articles), "--data", str(tmp_path / "data"), "-q"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Indexed 1 articles" in out and "1 files skipped" in out and "1 drafts" in out
    skipped = [line for line in out.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 1 and skipped[0].startswith("skipped bad.md:"), out
    line = skipped[0].split(":")[1]
    assert line.isdigit() and int(line) in (3, 4), skipped[0]
    assert (tmp_path / "data" / "index" / "current").exists()

    again = runner.invoke(main, ["index", "--articles", str(articles), "--data", str(tmp_path / "data"), "-q"])
    assert again.exit_code == 0 and "0 embedded, 1 unchanged" in again.output, again.output


def test_index_missing_articles_dir_is_a_clear_error(runner, tmp_path):
    result = runner.invoke(main, ["index", "--articles", str(tmp_path / "nope"), "--data", str(tmp_path / "d")])
    assert result.exit_code != 0
    assert "nope" in result.output and "Traceback" not in result.output


def test_search_json(runner, indexed_dir):
    result = runner.invoke(main, ["search", "vpn keeps droping when i work from home", "--json", "--data", str(indexed_dir)])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["answered"] is True and 1 <= len(answer["items"]) <= 3
    top = answer["items"][0]
    assert top["slug"] == "vpn-keeps-dropping"
    assert 0.0 <= top["confidence"] <= 1.0 and top["passage"] and top["url"].startswith("/articles/vpn-keeps-dropping")


def test_search_text_shows_passage_anchor_and_confidence(runner, indexed_dir):
    result = runner.invoke(main, ["search", "outlook error 0x800CCC0E", "--data", str(indexed_dir)])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("1. ") and "0x800CCC0E" in first and "[" in first
    assert "/articles/outlook-error-0x800ccc0e" in result.output


def test_search_russian_locale(runner, indexed_dir):
    result = runner.invoke(main, ["search", "впн не подключается", "--locale", "ru", "--json", "--data", str(indexed_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"][0]["locale"] == "ru"


def test_search_out_of_scope_says_so_plainly(runner, indexed_dir):
    result = runner.invoke(main, ["search", "how do i bake sourdough", "--data", str(indexed_dir)])
    assert result.exit_code == 0, result.output
    assert "No article answers this confidently" in result.output
    data = runner.invoke(main, ["search", "how do i bake sourdough", "--json", "--data", str(indexed_dir)])
    assert json.loads(data.stdout)["answered"] is False


def test_search_without_index_is_a_clear_error(runner, tmp_path):
    result = runner.invoke(main, ["search", "vpn", "--data", str(tmp_path / "empty")])
    assert result.exit_code != 0
    assert "kb index" in result.output and "Traceback" not in result.output


def test_search_empty_query_is_a_clear_error(runner, indexed_dir):
    result = runner.invoke(main, ["search", "   ", "--data", str(indexed_dir)])
    assert result.exit_code != 0 and "empty" in result.output


def test_bad_setting_is_a_clear_error(runner, tmp_path):
    result = runner.invoke(main, ["search", "vpn", "--data", str(tmp_path)], env={"KB_PORT": "eighty"})
    assert result.exit_code != 0 and "port" in result.output and "Traceback" not in result.output


# -- one error path, --data anywhere, no stray databases, safe terminal output ------------------


@pytest.mark.parametrize("args", [["stats"], ["tickets"], ["gaps"], ["tickets", "retry"], ["user", "passwd", "a@b.example",
                                                                                            "--password-stdin"]])
def test_read_only_commands_refuse_a_folder_without_a_database(runner, tmp_path, args):
    wrong = tmp_path / "not-kb"
    wrong.mkdir()
    for argv in ([*args, "--data", str(wrong)], ["--data", str(wrong), *args]):
        result = runner.invoke(main, argv, input="x" * 12 + "\n")
        assert result.exit_code == 1, result.output
        assert "No kb database in" in result.output and "Traceback" not in result.output
        assert not (wrong / "kb.db").exists() and not (tmp_path / "data").exists()


@pytest.fixture
def served_dir(data_dir):
    """A data directory with its index and a database, as a kb that has run leaves it."""
    from kb.storage.database import Database

    Database(data_dir / "kb.db").close()
    return data_dir


def test_data_works_before_or_after_the_subcommand(runner, served_dir):
    data_dir = served_dir
    for argv in (["--data", str(data_dir), "gaps", "--json"], ["gaps", "--json", "--data", str(data_dir)],
                 ["gaps", "link", "999", "vpn-connect", "--data", str(data_dir)],
                 ["--data", str(data_dir), "gaps", "link", "999", "vpn-connect"]):
        result = runner.invoke(main, argv)
        assert "No such option" not in result.output and "No kb database" not in result.output, (argv, result.output)
        if argv[-1] == "vpn-connect" or "link" in argv:
            assert result.exit_code == 1 and "No gap 999" in result.output, (argv, result.output)
        else:
            assert result.exit_code == 0 and json.loads(result.stdout)["gaps"] == [], result.output


def test_a_later_data_option_wins(runner, served_dir, tmp_path):
    data_dir = served_dir
    result = runner.invoke(main, ["--data", str(tmp_path / "nowhere"), "stats", "--json", "--data", str(data_dir)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["eval", "calibrate"])
def test_a_dataset_folder_without_its_files_is_one_line(runner, tmp_path, command):
    folder = tmp_path / "not-a-dataset"
    folder.mkdir()
    result = runner.invoke(main, [command, "--dataset", str(folder), *(["--no-apply"] if command == "calibrate" else [])])
    assert result.exit_code == 1, result.output
    assert "needs articles.jsonl and queries.jsonl" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_typed_text_cannot_drive_the_terminal(runner, data_dir):
    import time

    from kb.storage import schema
    from kb.storage.database import Database

    hostile = "vpn \x1b]0;owned\x07\x1b[8m hidden \x9b31m \u202e"
    db = Database(data_dir / "kb.db")
    with db.write() as conn:  # written raw, as before kb stripped control characters on the way in
        conn.execute(schema.requests.insert(), [
            {"id": f"r_{i:016x}", "ts": time.time() - 60, "kind": "suggest", "session": f"s{i}", "query": hostile,
             "locale": "en", "answered": 0, "top_confidence": 0.1, "fallback": 0, "results": "[]", "source": "api"}
            for i in range(3)])
    db.close()
    for argv in (["stats", "--data", str(data_dir)], ["stats", "--json", "--data", str(data_dir)]):
        result = runner.invoke(main, argv)
        assert result.exit_code == 0, result.output
        assert not any(c in result.output for c in "\x1b\x07\x9b\u202e"), repr(result.output[-400:])
        assert "x1b]0;owned" in result.output or "u001b]0;owned" in result.output


def test_plain_escapes_controls_and_keeps_text():
    from kb.cli import plain

    assert plain("забыл пароль\tok\n") == "забыл пароль\tok\n"
    assert plain("a\nb", one_line=True) == "a\\nb"
    assert plain("\x1b[2J\x00\x7f\x85") == "\\x1b[2J\\x00\\x7f\\x85"
    assert plain("\u202eevil") == "\\u202eevil"
