"""Downloads of ``url:`` sources into a local cache, checked against the catalog's sha256.

``fetch`` keeps one verified copy per URL under ``CURATE_CACHE`` (default ``~/.cache/curate/downloads``). A file
is written under a temporary name and renamed only once its hash is known (and matches, when one is pinned), so
nothing half-downloaded or unverified is ever read. Only http and https URLs are fetched: a ``file://`` URL would
let a catalog entry read any local file under the name of a download.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from curate.ingest.base import ConnectorError
from curate.io import file_sha256

SCHEMES = ("http", "https")


def cache_dir() -> Path:
    return Path(os.environ.get("CURATE_CACHE", "~/.cache/curate")).expanduser() / "downloads"


def url_name(url: str) -> str:
    return Path(urllib.parse.urlparse(url).path).name or "download"


def fetch(url: str, expected_sha256: str | None = None, folder: Path | None = None) -> tuple[Path, str]:
    """The cached copy of ``url`` (downloaded if missing or not matching ``expected_sha256``) and its sha256."""
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in SCHEMES:
        raise ConnectorError(f"cannot download {url}: only http and https URLs are downloaded, not "
                             f"{f'{scheme}:' if scheme else 'a URL without a scheme'}; give a local file as 'path:'")
    folder = folder or cache_dir()
    expected = expected_sha256.lower() if expected_sha256 else None
    name = url_name(url)
    target = folder / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"
    if target.is_file():
        actual = file_sha256(target)
        if expected in (None, actual):
            return target, actual
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if expected and actual != expected:
            raise ConnectorError(f"download of {url} has sha256 {actual}, expected {expected}: the file changed "
                                 "upstream or the catalog's sha256 is wrong")
        os.replace(partial, target)
    except OSError as e:  # urllib's URLError and HTTPError, timeouts, resets
        raise ConnectorError(f"cannot download {url}: {e}") from e
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target, actual
