"""Reader for the idx format (MNIST, Fashion-MNIST and their mirrors), gzipped or not.

Layout: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension, then the values, big-endian, row-major. We check every part of that so a truncated
download fails with the file's name instead of a reshape error deep inside NumPy.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ganforge.errors import GanforgeError

# idx type code -> big-endian NumPy dtype
IDX_DTYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
_FIX = "delete it and download or copy it again"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one idx file (plain or gzip, detected from its first bytes) into a native-endian array."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise GanforgeError(f"idx file {path} is truncated: only {len(raw)} bytes, not even a header; {_FIX}")
    code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or code not in IDX_DTYPES or ndim == 0:
        raise GanforgeError(
            f"{path} is not an idx file: bad magic number 0x{raw[:4].hex()} (expected 0x0000TTDD, e.g. "
            f"0x00000803 for images, 0x00000801 for labels); {_FIX}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise GanforgeError(f"idx file {path} is truncated inside its header ({len(raw)} bytes); {_FIX}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[code])
    count = math.prod(dims)
    expected, found = count * dtype.itemsize, len(raw) - header
    if found < expected:
        raise GanforgeError(
            f"idx file {path} is truncated: its header promises shape {dims} ({expected} bytes of data) "
            f"but only {found} bytes follow; {_FIX}"
        )
    if found > expected:
        raise GanforgeError(
            f"idx file {path} is corrupt: {found - expected} unexpected bytes after the data "
            f"of shape {dims}; {_FIX}"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise GanforgeError(f"cannot read idx file {path}: {exc}") from exc
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise GanforgeError(f"gzip file {path} is truncated or corrupt ({exc}); {_FIX}") from exc


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an idx file (gzipped when ``path`` ends in ``.gz``); handy for tests and exports."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"idx cannot store dtype {array.dtype}")
    dtype = np.dtype(IDX_DTYPES[codes[native]])
    data = bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data += np.ascontiguousarray(array, dtype=dtype).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
