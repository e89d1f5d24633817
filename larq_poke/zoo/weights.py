"""Pretrained-weights registry: what exists, where it comes from, and a safe cached download.

Every zoo family describes its weights here as data (:class:`WeightsEntry`): model, variant, URL,
sha256, source, license and the published top-1. :func:`fetch` downloads an entry once into the
cache, checks its sha256, and writes it atomically (a partial download never appears under the
final name).

The cache is ``$LARQ_POKE_CACHE`` if set, else ``$KERAS_HOME/larq_poke`` or
``~/.keras/larq_poke``. Pre-seed it by copying a file to :func:`cached_path` (or with
``larq-poke weights import``).

```python
from larq_poke.zoo import weights
for entry in weights.list_weights():
    print(entry.model, entry.variant, entry.top1)
path = weights.fetch(weights.get("bnext-t", "imagenet"))
```
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

__all__ = [
    "WeightsEntry",
    "WeightsError",
    "register",
    "get",
    "list_weights",
    "cache_dir",
    "cached_path",
    "fetch",
    "sha256_of",
    "install_file",
    "atomic_path",
]


class WeightsError(RuntimeError):
    """A weights file could not be found, downloaded or verified."""


@dataclasses.dataclass(frozen=True)
class WeightsEntry:
    """Where one set of pretrained weights comes from.

    # Arguments
    model: zoo name, e.g. ``"bnext-t"``.
    variant: e.g. ``"imagenet"``.
    url: download address (``http(s)://``, ``file://``, or ``gdrive://<file id>``).
    file_name: name of the file in the cache.
    format: the file's format: ``"keras_h5"`` (loaded as is) or an official checkpoint format
        (``"torch"``, ``"flax_msgpack"``, ``"npz"``; see :mod:`larq_poke.checkpoints`), which is
        converted to Keras weights once by ``family`` and cached.
    family: the zoo family that reads an official checkpoint (``"bnext"``, ``"pokebnn"``).
    preprocessing: the :mod:`larq_poke.data.preprocessing` preset the weights were trained and
        evaluated with (``"bnext"``: resize 235, center crop 224, ImageNet mean / std).
    sha256: expected hex digest of the downloaded file, or ``None`` when not pinned yet (then only
        the file's structure is checked by the importer).
    source: who published it (repository, paper).
    license: the license of the weights.
    top1: published ImageNet top-1 accuracy in percent.
    notes: anything a user should know.
    """

    model: str
    variant: str
    url: str
    file_name: str
    format: str
    family: str = ""
    preprocessing: str = ""
    sha256: Optional[str] = None
    source: str = ""
    license: str = ""
    top1: Optional[float] = None
    notes: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_REGISTRY: Dict[Tuple[str, str], WeightsEntry] = {}

# Transports for URL schemes that need more than a plain GET (e.g. Google Drive's confirm flow).
# A transport takes (url, open_url) and returns a file-like HTTP response.
_TRANSPORTS: Dict[str, Callable] = {}


def register(entry: WeightsEntry) -> WeightsEntry:
    """Add ``entry`` to the registry (replacing an entry with the same model and variant)."""
    _REGISTRY[(entry.model, entry.variant)] = entry
    return entry


def register_transport(scheme: str, transport: Callable) -> None:
    """Use ``transport(url, timeout)`` (returning a binary response object) for ``scheme://`` URLs."""
    _TRANSPORTS[scheme] = transport


def get(model: str, variant: str = "imagenet") -> WeightsEntry:
    """The registered entry for ``model`` / ``variant``; ``KeyError`` listing what exists."""
    try:
        return _REGISTRY[(model, variant)]
    except KeyError:
        known = ", ".join(f"{m}/{v}" for m, v in sorted(_REGISTRY)) or "none"
        raise KeyError(f"No weights registered for {model!r} variant {variant!r}. Known: {known}.") from None


def list_weights(model: Optional[str] = None) -> List[WeightsEntry]:
    """All registered entries, optionally only those of ``model``."""
    return [e for (m, _), e in sorted(_REGISTRY.items()) if model is None or m == model]


def cache_dir() -> Path:
    """The directory weights are cached in (created on demand)."""
    if os.environ.get("LARQ_POKE_CACHE"):
        root = Path(os.environ["LARQ_POKE_CACHE"]).expanduser()
    else:
        keras_home = os.environ.get("KERAS_HOME")
        root = (Path(keras_home) if keras_home else Path.home() / ".keras") / "larq_poke"
    return root


def cached_path(entry: WeightsEntry) -> Path:
    """Where ``entry``'s file lives in the cache (it may not exist yet)."""
    return cache_dir() / entry.model / entry.variant / entry.file_name


def sha256_of(path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(dest, suffix: str = ".part"):
    """Yield a temporary path next to ``dest``; on success rename it to ``dest`` atomically, on
    any error delete it, so ``dest`` is either absent, the old file, or complete.

    ```python
    with atomic_path(cache / "model.h5", suffix=".part.h5") as tmp:
        model.save_weights(tmp)
    ```
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    while True:  # as mkstemp, but with open()'s mode (0o666 less the umask), not a private 0o600
        tmp_name = str(dest.parent / f".{dest.name}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp_name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp_name
        os.replace(tmp_name, dest)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def _atomic_copy_stream(stream, dest: Path, expected_sha256: Optional[str], label: str) -> Path:
    """Write ``stream`` next to ``dest``, verify its sha256, then rename it into place."""
    digest = hashlib.sha256()
    with atomic_path(dest) as tmp_name:
        with open(tmp_name, "wb") as out:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if expected_sha256 is not None and actual != expected_sha256.lower():
            raise WeightsError(
                f"sha256 mismatch for {label}: expected {expected_sha256}, got {actual}. "
                "The file is corrupted or is not the registered one; nothing was cached."
            )
    return dest


def install_file(entry: WeightsEntry, source_path, *, verify_sha256: bool = True) -> Path:
    """Copy a manually downloaded file into the cache for ``entry`` (atomic, sha256-checked)."""
    source_path = Path(source_path)
    if not source_path.is_file():
        raise WeightsError(f"{source_path} does not exist or is not a file.")
    with open(source_path, "rb") as stream:
        return _atomic_copy_stream(
            stream, cached_path(entry), entry.sha256 if verify_sha256 else None, str(source_path)
        )


def _open_url(url: str, timeout: float):
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in _TRANSPORTS:
        return _TRANSPORTS[scheme](url, timeout)
    request = urllib.request.Request(url, headers={"User-Agent": "larq-poke"})
    return urllib.request.urlopen(request, timeout=timeout)


def fetch(entry: WeightsEntry, *, force: bool = False, timeout: float = 60.0) -> Path:
    """Path of ``entry``'s file in the cache, downloading it first if needed.

    A cached file whose sha256 does not match a pinned ``entry.sha256`` is downloaded again.
    Raises :class:`WeightsError` naming the URL when the download fails (e.g. offline) and when
    the downloaded file does not match the pinned sha256; nothing is left in the cache then.
    """
    dest = cached_path(entry)
    if dest.is_file() and not force:
        if entry.sha256 is None or sha256_of(dest) == entry.sha256.lower():
            return dest
    try:
        with _open_url(entry.url, timeout) as response:
            return _atomic_copy_stream(response, dest, entry.sha256, entry.url)
    except WeightsError:
        raise
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise WeightsError(
            f"Could not download weights for {entry.model}/{entry.variant} from {entry.url}: {err}. "
            f"If this machine is offline, download the file elsewhere and install it with "
            f"`larq-poke weights import {entry.model} FILE` (it goes to {dest})."
        ) from err
