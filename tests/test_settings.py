"""Settings: every field documented, KB_* coercion, clear errors for bad values and unknown keys."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from kb.settings import Settings, SettingsError, documented, markdown_table

ROOT = Path(__file__).resolve().parents[1]
FIELDS = [f.name for f in dataclasses.fields(Settings)]


def load(tmp_path: Path, environ: dict[str, str] | None = None, toml: str | None = None, **overrides) -> Settings:
    config = tmp_path / "kb.toml"
    if toml is not None:
        config.write_text(toml)
    return Settings.load(environ=environ or {}, config=config, **overrides)


def test_documented_names_every_field_with_help():
    docs = {env: (help, default) for env, help, default in documented()}
    assert sorted(docs) == sorted("KB_" + name.upper() for name in FIELDS)
    short = [env for env, (help, _) in docs.items() if len(help.strip()) < 10]
    assert short == [], "settings without real help text"


def test_every_setting_is_documented_as_the_code_says():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert markdown_table() in text, "docs/configuration.md is out of date: regenerate its table"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^#+ .*configuration", readme, flags=re.IGNORECASE | re.MULTILINE)
    assert "docs/configuration.md" in readme


def test_defaults_need_no_environment(tmp_path):
    s = load(tmp_path)
    assert s == Settings()
    assert s.index_path == s.data / "index" and s.db_path == s.data / "kb.db"


@pytest.mark.parametrize(
    "env, name, expected",
    [
        ({"KB_SECURE_COOKIES": "yes"}, "secure_cookies", True),
        ({"KB_SECURE_COOKIES": "TRUE"}, "secure_cookies", True),
        ({"KB_SECURE_COOKIES": "1"}, "secure_cookies", True),
        ({"KB_CONTACT_ONLY_AFTER_QUERY": "off"}, "contact_mode", "neutral"),  # before the three modes
        ({"KB_CONTACT_ONLY_AFTER_QUERY": "1"}, "contact_mode", "self-service"),
        ({"KB_CONTACT_MODE": "ASK_FIRST"}, "contact_mode", "ask-first"),  # Help Scout's spelling
        ({"KB_CONTACT_MODE": "askFirst"}, "contact_mode", "ask-first"),
        ({"KB_PORT": "9001"}, "port", 9001),
        ({"KB_SUGGEST_LIMIT": " 5 "}, "suggest_limit", 5),
        ({"KB_INDEX_POLL_SECONDS": "0.5"}, "index_poll_seconds", 0.5),
        ({"KB_CORS_ORIGINS": "https://a.example, https://b.example,"}, "cors_origins",
         ("https://a.example", "https://b.example")),
        ({"KB_LOCALES": "en"}, "locales", ("en",)),
        ({"KB_DATA": "/srv/kb"}, "data", Path("/srv/kb")),
        ({"KB_MODEL": "/models/mini"}, "model", "/models/mini"),
        ({"KB_GLOSSARY": ""}, "glossary", ""),
    ],
)
def test_environment_values_are_coerced(tmp_path, env, name, expected):
    value = getattr(load(tmp_path, env), name)
    assert value == expected and type(value) is type(expected)


def test_unknown_environment_variables_are_ignored(tmp_path):
    assert load(tmp_path, {"KB_NOT_A_SETTING": "1", "HOME": "/root"}) == Settings()


def test_toml_then_environment_then_overrides(tmp_path):
    toml = 'port = 7000\nhost = "0.0.0.0"\nlocales = ["en", "ru", "de"]\nsecure_cookies = true\n'
    s = load(tmp_path, {"KB_PORT": "7100"}, toml)
    assert (s.host, s.port, s.locales, s.secure_cookies) == ("0.0.0.0", 7100, ("en", "ru", "de"), True)
    assert load(tmp_path, {"KB_PORT": "7100"}, toml, port=7200).port == 7200
    assert load(tmp_path, {}, toml, port=None).port == 7000  # None means "not given" (CLI options)


def test_a_kb_toml_from_before_the_contact_modes_keeps_working(tmp_path):
    assert load(tmp_path, toml="contact_only_after_query = true\n").contact_mode == "self-service"
    assert load(tmp_path, toml="contact_only_after_query = false\n").contact_mode == "neutral"
    # the new key beside the old one in the same file wins; the environment wins over the file, either spelling
    both = 'contact_only_after_query = false\ncontact_mode = "ask-first"\n'
    assert load(tmp_path, toml=both).contact_mode == "ask-first"
    assert load(tmp_path, {"KB_CONTACT_ONLY_AFTER_QUERY": "true"}, both).contact_mode == "self-service"
    assert load(tmp_path, {"KB_CONTACT_MODE": "neutral"}, "contact_only_after_query = true\n").contact_mode == "neutral"


def test_kb_config_variable_points_at_the_file(tmp_path):
    other = tmp_path / "elsewhere.toml"
    other.write_text("port = 8123\n")
    assert Settings.load(environ={"KB_CONFIG": str(other)}).port == 8123


@pytest.mark.parametrize(
    "env, name",
    [
        ({"KB_PORT": "eighty"}, "port"),
        ({"KB_WORKERS": "1.5"}, "workers"),
        ({"KB_SECURE_COOKIES": "maybe"}, "secure_cookies"),
        ({"KB_INDEX_POLL_SECONDS": "soon"}, "index_poll_seconds"),
        # out of range: a port outside 0-65535 or an unknown backend fails at start-up, not much later
        ({"KB_PORT": "70000"}, "port"),
        ({"KB_PORT": "-1"}, "port"),
        ({"KB_BACKEND": "tensorflow"}, "backend"),
        ({"KB_CONTACT_MODE": "email-only"}, "contact_mode"),
        ({"KB_CONTACT_ONLY_AFTER_QUERY": "sometimes"}, "contact_only_after_query"),
        ({"KB_SESSION_IDLE_MINUTES": "0"}, "session_idle_minutes"),
    ],
)
def test_invalid_values_name_the_setting(tmp_path, env, name):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, env)
    assert name in info.value.message


def test_invalid_toml_value_names_the_setting(tmp_path):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, toml='port = "eighty"\n')
    assert "port" in info.value.message


def test_unknown_toml_key_is_an_error(tmp_path):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, toml='port = 8000\ncolour = "blue"\n')
    assert "colour" in info.value.message


def test_broken_toml_names_the_file(tmp_path):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, toml="port = \n[")
    assert "kb.toml" in info.value.message


def test_settings_are_frozen(tmp_path):
    s = load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]
    assert s.replace(port=1).port == 1 and s.port == 8000


def environ_reads(path: Path) -> list[str]:
    """Lines that read os.environ or os.getenv; setting or copying it for a child process is allowed."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "getenv":
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        elif isinstance(node, ast.Attribute) and node.attr == "environ":
            parent = parents.get(node)
            if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store):
                continue
            if isinstance(parent, ast.Attribute) and parent.attr in ("setdefault", "copy"):
                continue  # forcing HF_HUB_OFFLINE for the model loader; a child's environment
            if isinstance(parent, ast.Call) and getattr(parent.func, "id", None) == "dict":
                continue  # dict(os.environ, KB_X=...): passing the environment on to a child process
            if isinstance(parent, ast.Dict) and None in parent.keys:
                continue  # {**os.environ, ...}: the same
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return out


def test_only_settings_reads_the_environment():
    files = [p for d in ("kb", "search") for p in sorted((ROOT / d).rglob("*.py")) if p.name != "settings.py"]
    reads = [line for p in files for line in environ_reads(p)]
    assert reads == [], "read settings through kb.settings.Settings, not os.environ"
