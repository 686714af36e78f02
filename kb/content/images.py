"""Images in the articles folder (articles/images/): checked by content, size-limited, safely named.

An upload is accepted only when Pillow reads it as PNG, JPEG, GIF or WebP (what the bytes are, not
what the name says; SVG, which can carry script, is never accepted), it is at most IMAGE_BYTES
long and IMAGE_PIXELS large. It is stored under a name made of lowercase ASCII letters, digits and
hyphens with the extension of its real type, inside the images folder and nowhere else.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from kb.errors import ValidationError

IMAGES_DIR = "images"  # inside the articles folder
IMAGE_BYTES = 2 * 1024 * 1024
IMAGE_PIXELS = 40_000_000  # 8000 x 5000: larger is refused before it is decoded
TYPES = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg"), "GIF": ("gif", "image/gif"),
         "WEBP": ("webp", "image/webp")}
NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*\.(?:png|jpg|gif|webp)$")


@dataclass(frozen=True)
class StoredImage:
    """An image in the articles folder: its file name and content type."""

    name: str
    content_type: str
    created: bool  # False when the same bytes were already there under this name


def image_type(data: bytes) -> tuple[str, str] | None:
    """(extension, content type) of PNG, JPEG, GIF or WebP bytes that decode; None for anything else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(TYPES)) as img:
                if img.width * img.height > IMAGE_PIXELS:
                    return None
                img.verify()
                kind = img.format
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
    return TYPES.get(kind or "")


def safe_stem(filename: str) -> str:
    """A file name's stem as lowercase ASCII letters, digits and hyphens ('image' if nothing is left)."""
    stem = Path(filename.replace("\\", "/")).name.rsplit(".", 1)[0]
    ascii_ = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_).strip("-")[:60] or "image"


def images_dir(articles: Path) -> Path:
    return Path(articles) / IMAGES_DIR


def image_path(articles: Path, name: str) -> Path | None:
    """The file of an image name inside articles/images/, or None if the name is not one kb makes or
    the file would resolve outside that folder (a symbolic link, say)."""
    if not NAME.match(name):
        return None
    folder = images_dir(articles).resolve()
    path = (folder / name).resolve()
    return path if path.parent == folder and path.is_file() else None


def store_image(articles: Path, filename: str, data: bytes) -> StoredImage:
    """Check an upload and write it into articles/images/ atomically under a safe, unused name."""
    if len(data) > IMAGE_BYTES:
        raise ValidationError([{"key": "image", "message": f"the image is larger than {IMAGE_BYTES // 1024 // 1024} MB"}],
                              message=f"The image is larger than {IMAGE_BYTES // 1024 // 1024} MB.")
    kind = image_type(data)
    if kind is None:
        raise ValidationError([{"key": "image", "message": "not a PNG, JPEG, GIF or WebP image"}],
                              message="That file is not a PNG, JPEG, GIF or WebP image (SVG is not accepted).")
    extension, content_type = kind
    folder = images_dir(articles)
    folder.mkdir(exist_ok=True)
    if folder.resolve().parent != Path(articles).resolve():
        raise ValidationError([{"key": "image", "message": "the images folder is not inside the articles folder"}])
    stem = safe_stem(filename)
    for n in range(1, 1000):
        name = f"{stem}.{extension}" if n == 1 else f"{stem}-{n}.{extension}"
        target = folder / name
        if target.exists():
            if target.is_file() and hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest():
                return StoredImage(name, content_type, False)
            continue
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        try:
            os.link(tmp, target)  # fails if another upload took the name meanwhile
        except FileExistsError:
            continue
        finally:
            tmp.unlink()
        return StoredImage(name, content_type, True)
    raise ValidationError([{"key": "image", "message": "too many images with this name"}])
