"""Video clips: reading and writing them, and Moving MNIST (Srivastava et al. 2015).

A clip is stored as uint8 ``(T, C, H, W)`` and a batch of clips as ``(N, T, C, H, W)``, the
video counterpart of ``ImageData.images``; models see floats in [-1, 1] (``to_model_range``).

- ``read_clips(path)`` reads ``.npy``/``.npz`` arrays, a folder of frames (one clip), a folder of
  clip folders, ``.gif`` and ``.mp4`` into ``(N, T, C, H, W)`` uint8, plus a ``ClipLayout``
  saying how the input was laid out, so ``write_clips(clips, path, layout)`` can write generated
  clips back in the same layout and dtype.
- ``moving_mnist`` draws bouncing-digit sequences; ``MovingMNIST`` is an endless training
  stream of them whose batches are a pure function of (seed, batch index), so a resumed run
  replays exactly; ``moving_mnist_test_set`` builds the fixed evaluation set once and caches it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageSequence

from ganforge.data.images import _GRAY_MODES, IMAGE_SUFFIXES, _decode, _open_image, to_model_range
from ganforge.data.sources import user_cache_dir
from ganforge.errors import ConfigError, GanforgeError
from ganforge.files import sha256_file

ARRAY_SUFFIXES = (".npy", ".npz")
GIF_SUFFIX = ".gif"
VIDEO_SUFFIXES = (".mp4",)
DEFAULT_FPS = 10.0
NPZ_KEY = "clips"  # the array name write_clips uses and read_clips looks for first
_FLOAT_TOLERANCE = 1e-6
_GIF_COMMENT = "ganforge fps="  # lets read_clips undo Pillow's merging of identical GIF frames
_MP4_GRAY_TOLERANCE = 2  # H.264 decodes grey video with channels a level or two apart
_READABLE = ".npy, .npz, .gif, .mp4, a folder of PNG/JPEG frames or a folder of such folders"

# Moving MNIST as in Srivastava et al.'s generator: 20 frames of 64x64, two digits, and a
# velocity of 0.1 "free range" per frame (positions live in [0, 1] and are scaled by
# size - digit size, so 3.6 pixels per frame at 64x64).
MOVING_MNIST_STEP = 0.1
TEST_SET_SEED = 1_234
_TEST_SET_VERSION = 1  # bump when the generator changes, so old caches are not reused


# ---------------------------------------------------------------------------------------------
# reading and writing clips


@dataclass(frozen=True)
class ClipLayout:
    """How clips were laid out on disk, so outputs can be written back the same way.

    ``kind``: "array" (.npy/.npz), "frames" (a folder of frames), "clip_folders" (a folder of
    clip folders), "gif" or "mp4". ``batched``: the input held a batch ``(N, T, ...)`` rather
    than one clip. ``channel_axis``: the array had a channel axis (False for ``(T, H, W)``).
    ``dtype``: the array's NumPy dtype ("uint8", "float32", ...). ``fps``: frames per second
    of a GIF or video. ``key``: the array's name inside an ``.npz``.
    """

    kind: str
    batched: bool = True
    channel_axis: bool = True
    dtype: str = "uint8"
    fps: float | None = None
    key: str | None = None


def read_clips(path: str | os.PathLike[str]) -> tuple[torch.Tensor, ClipLayout]:
    """Read clips from ``path`` as uint8 ``(N, T, C, H, W)``, plus the ``ClipLayout`` of the input.

    Accepted inputs:

    - ``.npy`` / ``.npz``: one clip ``(T, H, W)`` or ``(T, C, H, W)``, or a batch
      ``(N, T, C, H, W)``, with C in {1, 3}; uint8 (integers in 0..255 also pass), or floats in
      [0, 1] (scaled by 255). An ``.npz`` must hold one array, or one named ``clips``.
    - a folder of PNG/JPEG frames: one clip, frames in natural order (``frame2`` before
      ``frame10``), all the same size; grayscale when every frame is.
    - a folder of such folders: one clip per sub-folder (natural order); all clips must have
      the same number of frames and frame size.
    - ``.gif``: one clip (frames Pillow merged because they were identical are repeated back).
    - ``.mp4``: one clip, via imageio with the ``imageio-ffmpeg`` package.

    Every problem raises ``ConfigError`` naming the file and what would work.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return _read_folder(path)
    if not path.is_file():
        raise ConfigError(f"no file or folder at {path}; give {_READABLE}")
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return _read_array_file(path)
    if suffix == GIF_SUFFIX:
        return _read_gif(path)
    if suffix in VIDEO_SUFFIXES:
        return _read_video(path)
    raise ConfigError(f"cannot read clips from {path}: unknown file type {suffix or '(no suffix)'!r}; give {_READABLE}")


def write_clips(
    clips: torch.Tensor | np.ndarray,
    path: str | os.PathLike[str],
    layout: ClipLayout | None = None,
    fps: float | None = None,
    *,
    columns: int | None = None,
    padding: int = 2,
) -> Path:
    """Write clips to ``path``; the suffix picks the format. Returns the path written.

    ``clips`` is ``(N, T, C, H, W)`` or one ``(T, C, H, W)`` clip, either uint8 (storage) or
    floats in [-1, 1] (what a generator outputs; clamped). Formats:

    - ``.npy`` / ``.npz``: with ``layout``, the input's layout and dtype: a ``(T, H, W)`` uint8
      input gives ``(T, H, W)`` uint8, a float input gives floats in [0, 1]. Several clips
      written for a one-clip layout keep their batch (and channel) axis. Without ``layout``:
      uint8 ``(N, T, C, H, W)``. An ``.npz`` stores the array as ``clips`` (or ``layout.key``).
    - ``.gif``: one looping animation, clips tiled left to right (``columns`` per row, all in
      one row by default) with ``padding`` black pixels between them. Grayscale is exact;
      colour is quantised to GIF's 256 colours.
    - ``.mp4``: the same tiling, needs ``imageio-ffmpeg``; sides are padded to even sizes.
    - no suffix: a folder of PNG frames (one clip), or of ``clipNNNN`` frame folders; the folder
      must be new or hold no images.

    ``fps`` defaults to ``layout.fps``, else 10. The file is written atomically.
    """
    path = Path(path).expanduser()
    data = _as_uint8_clips(clips, f"clips written to {path}")
    if fps is None:
        fps = layout.fps if layout is not None and layout.fps else DEFAULT_FPS
    if not fps > 0:
        raise ConfigError(f"fps must be positive, got {fps!r}")
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        _write_array_file(data, path, layout)
    elif suffix == GIF_SUFFIX:
        _write_gif(_tile(data, columns, padding), path, fps)
    elif suffix in VIDEO_SUFFIXES:
        _write_video(_tile(data, columns, padding), path, fps)
    elif not suffix:
        _write_folder(data, path)
    else:
        raise ConfigError(
            f"cannot write clips to {path}: unknown file type {suffix!r}; use .npy, .npz, .gif, .mp4 "
            "or a folder name without a suffix (PNG frames)"
        )
    return path


def _as_uint8_clips(clips: torch.Tensor | np.ndarray, what: str) -> np.ndarray:
    """uint8 ``(N, T, C, H, W)`` from uint8 clips or model floats in [-1, 1]."""
    x = clips.detach().cpu() if isinstance(clips, torch.Tensor) else torch.from_numpy(np.asarray(clips))
    if x.dim() == 4:
        x = x.unsqueeze(0)  # (T, C, H, W) -> (1, T, C, H, W)
    if x.dim() != 5 or x.shape[2] not in (1, 3) or 0 in x.shape:
        raise ConfigError(f"{what}: expected (N, T, C, H, W) or (T, C, H, W) with C in 1/3, got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.numpy()
    if not x.is_floating_point():
        raise ConfigError(f"{what}: expected uint8 clips or floats in [-1, 1], got dtype {x.dtype}")
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


@contextmanager
def _atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling to write, then rename it onto ``path``: readers never see half a file.

    The temporary name keeps the suffix (writers pick the format from it) and holds the process
    id, so two processes building the same cache file do not write into each other's file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------- arrays


def _read_array_file(path: Path) -> tuple[torch.Tensor, ClipLayout]:
    key = None
    try:
        loaded = np.load(path, allow_pickle=False)  # never unpickle: a data file must not run code
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                names = list(loaded.files)
                if NPZ_KEY in names:
                    key = NPZ_KEY
                elif len(names) == 1:
                    key = names[0]
                else:
                    raise ConfigError(
                        f"{path} holds arrays {sorted(names)}; name the clips array {NPZ_KEY!r} "
                        "or keep a single array in the archive"
                    )
                array = np.asarray(loaded[key])
        else:
            array = np.asarray(loaded)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; check that it is a complete NumPy file") from exc
    what = str(path) if key is None else f"{path}[{key!r}]"
    clips, layout = array_to_clips(array, what)
    return clips, ClipLayout(
        kind="array", batched=layout.batched, channel_axis=layout.channel_axis, dtype=layout.dtype, key=key
    )


def array_to_clips(array: np.ndarray, what: str = "array") -> tuple[torch.Tensor, ClipLayout]:
    """Validate a clip array and return it as uint8 ``(N, T, C, H, W)`` with its layout.

    Layouts: ``(T, H, W)``, ``(T, C, H, W)`` or ``(N, T, C, H, W)`` with C in {1, 3}. Values:
    uint8, integers in 0..255, or floats in [0, 1]. ``what`` names the array in errors.
    """
    a = np.asarray(array)
    shapes = "(T, H, W), (T, C, H, W) or (N, T, C, H, W) with C = 1 or 3"
    if a.ndim == 3:
        clips, batched, channel_axis = a[None, :, None], False, False  # (T, H, W) -> (1, T, 1, H, W)
    elif a.ndim == 4:
        clips, batched, channel_axis = a[None], False, True  # (T, C, H, W) -> (1, T, C, H, W)
    elif a.ndim == 5:
        clips, batched, channel_axis = a, True, True
    else:
        raise ConfigError(f"{what}: clip arrays must be {shapes}; got {a.ndim} dimensions, shape {a.shape}")
    if clips.shape[2] not in (1, 3):
        raise ConfigError(
            f"{what}: shape {a.shape} read as {'(T, C, H, W)' if a.ndim == 4 else '(N, T, C, H, W)'} has "
            f"{clips.shape[2]} channels, but C must be 1 or 3. Channels-last arrays need a.transpose(...) first; "
            "a (N, T, H, W) batch needs a[:, :, None]; the published mnist_test_seq.npy is (T, N, H, W): "
            "use a.transpose(1, 0, 2, 3)[:, :, None]"
        )
    if 0 in clips.shape:
        raise ConfigError(f"{what}: holds no clips or frames (shape {a.shape})")
    pixels = _to_uint8(clips, what)
    layout = ClipLayout(kind="array", batched=batched, channel_axis=channel_axis, dtype=str(a.dtype))
    return torch.from_numpy(np.ascontiguousarray(pixels)), layout


def _to_uint8(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.integer):
        low, high = int(a.min()), int(a.max())
        if low < 0 or high > 255:
            raise ConfigError(f"{what}: integer pixels must lie in 0..255, found {low}..{high}; save uint8 clips")
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        x = a.astype(np.float64)
        if not np.isfinite(x).all():
            raise ConfigError(f"{what}: contains NaN or infinite values; clean the array first")
        low, high = float(x.min()), float(x.max())
        if low < -_FLOAT_TOLERANCE or high > 1 + _FLOAT_TOLERANCE:
            raise ConfigError(
                f"{what}: float pixels must lie in [0, 1], found [{low:.4g}, {high:.4g}]; "
                "rescale them (x / 255 for 0..255, (x + 1) / 2 for [-1, 1]) or save uint8"
            )
        return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ConfigError(f"{what}: unsupported dtype {a.dtype}; save clips as uint8 or as floats in [0, 1]")


def clips_to_layout(data: np.ndarray, layout: ClipLayout | None) -> np.ndarray:
    """uint8 ``(N, T, C, H, W)`` clips as an array laid out like ``layout``'s input: one clip without its
    batch (and channel) axis when the input had none, and the input's dtype (floats in [0, 1])."""
    array: np.ndarray = data
    if layout is not None:
        if not layout.batched and len(array) == 1:
            array = array[0]  # (1, T, C, H, W) -> (T, C, H, W)
            if not layout.channel_axis and array.shape[1] == 1:
                array = array[:, 0]  # (T, 1, H, W) -> (T, H, W)
        dtype = np.dtype(layout.dtype)
        if np.issubdtype(dtype, np.floating):
            array = (array / np.float64(255.0)).astype(dtype)  # floats in [0, 1], like the input
        else:
            array = array.astype(dtype)
    return array


def _write_array_file(data: np.ndarray, path: Path, layout: ClipLayout | None) -> None:
    array = clips_to_layout(data, layout)  # from (N, T, C, H, W) uint8
    with _atomic_write(path) as tmp, open(tmp, "wb") as f:  # a file: np.save would add ".npy" to a name
        if path.suffix.lower() == ".npz":
            key = layout.key if layout is not None and layout.key else NPZ_KEY
            np.savez_compressed(f, **{key: array})
        else:
            np.save(f, array)


# ------------------------------------------------------------------- folders of frames


def natural_key(name: str) -> tuple[list[Any], str]:
    """Sort key putting ``frame2`` before ``frame10``: digit runs compare as numbers, case ignored."""
    parts = re.split(r"(\d+)", name.lower())  # even positions text, odd positions digits
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], name


def _frames_in(folder: Path) -> list[Path]:
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        ),
        key=lambda p: natural_key(p.name),
    )


def _read_folder(folder: Path) -> tuple[torch.Tensor, ClipLayout]:
    frames = _frames_in(folder)
    subfolders = sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: natural_key(p.name)
    )
    clip_folders = [sub for sub in subfolders if _frames_in(sub)]
    if frames and clip_folders:
        raise ConfigError(
            f"{folder} holds both frames ({frames[0].name}, ...) and clip folders ({clip_folders[0].name}, ...); "
            "put the frames of one clip in a folder of their own, or keep one clip's frames only"
        )
    if frames:
        clips = [frames]
        kind = "frames"
    elif clip_folders:
        empty = [sub.name for sub in subfolders if sub not in clip_folders]
        if empty:
            raise ConfigError(
                f"{folder}: clip folder {folder / empty[0]} holds no PNG/JPEG frames; remove it or add its frames"
            )
        clips = [_frames_in(sub) for sub in clip_folders]
        kind = "clip_folders"
        lengths = [len(c) for c in clips]
        if len(set(lengths)) > 1:
            odd = next(i for i, n in enumerate(lengths) if n != lengths[0])
            raise ConfigError(
                f"{folder}: clips must have equal length, but {clip_folders[0].name} has {lengths[0]} frames "
                f"and {clip_folders[odd]} has {lengths[odd]}; trim them to the same number of frames"
            )
    else:
        raise ConfigError(f"{folder} is empty: found no PNG/JPEG frames in it or in its sub-folders; give {_READABLE}")

    modes: list[str] = []
    size: tuple[int, int] | None = None
    first = folder
    for clip in clips:
        for frame in clip:
            with _open_frame(frame) as image:
                modes.append(image.mode)
                hw = (image.height, image.width)  # (H, W), ganforge's order
            if size is None:
                size, first = hw, frame
            elif hw != size:
                raise ConfigError(
                    f"{frame} is {hw[0]}x{hw[1]} (height x width) but {first} is {size[0]}x{size[1]}; "
                    "every frame of every clip must have the same size: resize them first"
                )
    assert size is not None
    gray = all(mode in _GRAY_MODES for mode in modes)
    channels = 1 if gray else 3
    out = np.empty((len(clips), len(clips[0]), size[0], size[1], channels), dtype=np.uint8)  # (N, T, H, W, C)
    for n, clip in enumerate(clips):
        for t, frame in enumerate(clip):
            with _open_frame(frame) as image:
                try:
                    pixels = _decode(image, gray, size)
                except (OSError, ValueError, SyntaxError) as exc:
                    raise ConfigError(f"cannot read frame {frame}: {exc}; remove or replace the file") from exc
            out[n, t] = pixels.reshape(size[0], size[1], channels)  # (H, W) or (H, W, C) -> (H, W, C)
    tensor = torch.from_numpy(out).permute(0, 1, 4, 2, 3).contiguous()  # (N, T, H, W, C) -> (N, T, C, H, W)
    return tensor, ClipLayout(kind=kind, batched=kind == "clip_folders")


def _open_frame(frame: Path) -> Image.Image:
    try:
        return _open_image(frame)
    except GanforgeError as exc:
        raise ConfigError(str(exc)) from exc


def _write_folder(data: np.ndarray, folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; give a folder name to write PNG frames into")
    if folder.is_dir() and (_frames_in(folder) or any(_frames_in(p) for p in folder.iterdir() if p.is_dir())):
        raise ConfigError(f"{folder} already holds images; write the frames into a new or empty folder")
    width, clip_width = max(4, len(str(data.shape[1] - 1))), max(4, len(str(len(data) - 1)))
    for n, clip in enumerate(data):
        target = folder if len(data) == 1 else folder / f"clip{n:0{clip_width}d}"
        target.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(clip):
            hwc = frame.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
            picture = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
            with _atomic_write(target / f"frame{t:0{width}d}.png") as tmp:
                picture.save(tmp, format="PNG")


# ------------------------------------------------------------------- GIF and MP4


def _tile(data: np.ndarray, columns: int | None, padding: int) -> np.ndarray:
    """Tile ``(N, T, C, H, W)`` clips into one ``(T, H', W', C)`` movie, left to right then down."""
    n, t, c, h, w = data.shape
    cols = n if columns is None else columns
    if not isinstance(cols, int) or cols < 1 or padding < 0:
        raise ConfigError(f"columns must be a positive int and padding >= 0, got {columns!r} and {padding!r}")
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    movie = np.zeros((t, rows * h + (rows - 1) * padding, cols * w + (cols - 1) * padding, c), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = r * (h + padding), col * (w + padding)
        movie[:, y : y + h, x : x + w] = data[i].transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
    return movie


def _write_gif(movie: np.ndarray, path: Path, fps: float) -> None:
    frames = [Image.fromarray(f[:, :, 0] if f.shape[2] == 1 else f) for f in movie]  # (H, W, C) each
    with _atomic_write(path) as tmp:
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=1000.0 / fps,
            loop=0,  # loop forever
            comment=f"{_GIF_COMMENT}{fps:g}".encode(),
        )


def _read_gif(path: Path) -> tuple[torch.Tensor, ClipLayout]:
    try:
        with Image.open(path) as gif:
            comment = gif.info.get("comment", b"")
            frames, durations = [], []
            for frame in ImageSequence.Iterator(gif):
                frames.append(np.asarray(frame.convert("RGB")))  # (H, W, 3)
                durations.append(float(frame.info.get("duration", 0) or 0))
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ConfigError(f"cannot read GIF {path}: {exc}; check that the file is a complete GIF") from exc
    # Pillow's writer merges identical consecutive frames into one longer frame: repeat them back.
    text = comment.decode("ascii", "replace") if isinstance(comment, bytes) else str(comment)
    fps = None
    if text.startswith(_GIF_COMMENT):
        try:
            fps = float(text[len(_GIF_COMMENT) :])
        except ValueError:
            fps = None
    positive = [d for d in durations if d > 0]
    base = 1000.0 / fps if fps else (min(positive) if positive else 0.0)
    repeats = [max(1, round(d / base)) if base > 0 and d > 0 else 1 for d in durations]
    movie = np.repeat(np.stack(frames), repeats, axis=0)  # (T, H, W, 3)
    if fps is None and base > 0:
        fps = 1000.0 / base
    return _movie_to_clip(movie, 0), ClipLayout(kind="gif", batched=False, fps=fps)


def _movie_to_clip(movie: np.ndarray, gray_tolerance: int) -> torch.Tensor:
    """RGB ``(T, H, W, 3)`` frames -> uint8 ``(1, T, C, H, W)``, C = 1 when the frames are grey."""
    spread = np.ptp(movie.astype(np.int16), axis=3)  # (T, H, W): how far apart R, G and B are
    if int(spread.max()) <= gray_tolerance:
        movie = np.rint(movie.mean(axis=3, keepdims=True)).astype(np.uint8)  # (T, H, W, 3) -> (T, H, W, 1)
    clip = torch.from_numpy(np.ascontiguousarray(movie)).permute(0, 3, 1, 2)  # (T, H, W, C) -> (T, C, H, W)
    return clip.unsqueeze(0).contiguous()  # (1, T, C, H, W)


def _have_ffmpeg() -> bool:
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def _need_ffmpeg(path: Path, action: str, instead: str) -> None:
    if not _have_ffmpeg():
        raise ConfigError(f"{action} {path} needs the imageio-ffmpeg package: pip install imageio-ffmpeg; or {instead}")


def _read_video(path: Path) -> tuple[torch.Tensor, ClipLayout]:
    _need_ffmpeg(path, "reading", "convert the video to a .gif or a folder of PNG frames")
    import imageio.v2 as imageio  # late: only video needs it

    try:
        reader = imageio.get_reader(path, format="FFMPEG")
        try:
            fps = reader.get_meta_data().get("fps")
            frames = [np.asarray(frame)[:, :, :3] for frame in reader]  # (H, W, 3) each
        finally:
            reader.close()
    except (OSError, RuntimeError, ValueError, IndexError) as exc:
        raise ConfigError(f"cannot read video {path}: {exc}; check that the file is a complete video") from exc
    if not frames:
        raise ConfigError(f"video {path} has no frames")
    clip = _movie_to_clip(np.stack(frames), _MP4_GRAY_TOLERANCE)
    return clip, ClipLayout(kind="mp4", batched=False, fps=float(fps) if fps else None)


def _write_video(movie: np.ndarray, path: Path, fps: float) -> None:
    _need_ffmpeg(path, "writing", "write a .gif instead")
    import imageio.v2 as imageio

    t, h, w, _ = movie.shape
    even = np.zeros((t, h + h % 2, w + w % 2, 3), dtype=np.uint8)  # yuv420p needs even sides
    even[:, :h, :w] = movie  # grey (C = 1) broadcasts to RGB
    with _atomic_write(path) as tmp:
        writer = imageio.get_writer(tmp, format="FFMPEG", fps=fps, macro_block_size=1)
        try:
            for frame in even:
                writer.append_data(frame)
        finally:
            writer.close()


# ---------------------------------------------------------------------------------------------
# Moving MNIST


def bounce_trajectory(start: torch.Tensor, velocity: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Positions in [0, 1] of points moving at constant speed and bouncing off the walls 0 and 1.

    ``start`` and ``velocity`` are ``(..., 2)`` as (y, x); returns ``(..., n_frames, 2)``.
    As in the reference Moving MNIST generator: frame 0 is ``start``; each step adds the
    velocity, and a coordinate that passes a wall is put on the wall and its velocity flips,
    so a digit touches the edge in one frame and moves away in the next.
    """
    position = start.to(torch.float64).clone()
    velocity = velocity.to(torch.float64).clone()
    positions = [position.clone()]
    for _ in range(n_frames - 1):
        position = position + velocity
        hit = (position <= 0.0) | (position >= 1.0)
        velocity = torch.where(hit, -velocity, velocity)
        position = position.clamp(0.0, 1.0)
        positions.append(position)
    return torch.stack(positions, dim=-2)  # n_frames x (..., 2) -> (..., n_frames, 2)


def paste_digits(patches: torch.Tensor, corners: torch.Tensor, size: int, chunk: int = 256) -> torch.Tensor:
    """Draw moving digits on black frames, overlaps combined with max (never summed, so no overflow).

    ``patches`` uint8 ``(N, D, h, w)``: digit ``d`` of sequence ``n``; ``corners`` int ``(N, T, D, 2)``:
    its top-left (row, column) in each frame, inside ``[0, size - h] x [0, size - w]``. Returns
    uint8 ``(N, T, size, size)``. Works on ``chunk`` sequences at a time to bound the index memory.
    """
    n, t, d = corners.shape[:3]
    h, w = patches.shape[2:]
    if corners.numel() and (
        int(corners.min()) < 0 or int(corners[..., 0].max()) > size - h or int(corners[..., 1].max()) > size - w
    ):
        raise ConfigError(f"paste_digits: corners must lie in [0, {size - h}] x [0, {size - w}] for {h}x{w} digits")
    frames = torch.zeros((n, t, size, size), dtype=torch.uint8)
    rows_in_digit, cols_in_digit = torch.arange(h), torch.arange(w)
    for begin in range(0, n, chunk):
        end = min(begin + chunk, n)
        canvas = frames[begin:end].view(-1, size * size)  # (n', T, S, S) -> (n' * T, S * S), a view
        for k in range(d):
            corner = corners[begin:end, :, k].reshape(-1, 2)  # (n', T, 2) -> (n' * T, 2)
            rows = corner[:, 0, None] + rows_in_digit  # (n' * T, h)
            cols = corner[:, 1, None] + cols_in_digit  # (n' * T, w)
            flat = rows[:, :, None] * size + cols[:, None, :]  # (n' * T, h, w) pixel indices
            flat = flat.view(len(corner), h * w)  # (n' * T, h, w) -> (n' * T, h * w)
            patch = patches[begin:end, k].repeat_interleave(t, dim=0).view(-1, h * w)  # (n' * T, h * w)
            # One digit never overlaps itself, so gather-max-scatter is exact.
            canvas.scatter_(1, flat, torch.maximum(canvas.gather(1, flat), patch))
    return frames


def _digit_tensor(digits: torch.Tensor | np.ndarray, size: int) -> torch.Tensor:
    x = digits if isinstance(digits, torch.Tensor) else torch.from_numpy(np.asarray(digits))
    if x.dim() == 4 and x.shape[1] == 1:
        x = x[:, 0]  # (N, 1, h, w) -> (N, h, w)
    if x.dim() != 3 or 0 in x.shape:
        raise ConfigError(f"digits must be uint8 (N, H, W) or (N, 1, H, W), got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ConfigError(f"digits must be uint8 (like MNIST's pixels), got {x.dtype}")
    if x.shape[1] > size or x.shape[2] > size:
        raise ConfigError(f"digits of {x.shape[1]}x{x.shape[2]} do not fit in {size}x{size} frames; raise size")
    return x.cpu()


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")
    return value


def moving_mnist(
    digits: torch.Tensor | np.ndarray,
    n_sequences: int,
    n_frames: int = 20,
    size: int = 64,
    n_digits: int = 2,
    seed: int = 0,
    step_length: float = MOVING_MNIST_STEP,
) -> torch.Tensor:
    """Moving MNIST sequences (Srivastava et al. 2015): uint8 ``(n_sequences, n_frames, 1, size, size)``.

    Each sequence draws ``n_digits`` digits uniformly from ``digits`` (uint8 ``(N, h, w)``, e.g.
    MNIST's 28x28), each with a uniform random start and a velocity of length ``step_length``
    (in units of the free range ``size - h``) in a uniform random direction; digits bounce off
    the edges (``bounce_trajectory``) and overlap by max. Deterministic for ``seed``: it seeds
    its own ``torch.Generator`` and never touches the global RNG.

    >>> digits = torch.zeros(10, 28, 28, dtype=torch.uint8)
    >>> digits[:, 8:20, 8:20] = 255  # squares standing in for MNIST digits
    >>> moving_mnist(digits, n_sequences=4, seed=0).shape
    torch.Size([4, 20, 1, 64, 64])
    """
    _positive_int("n_sequences", n_sequences)
    _positive_int("n_frames", n_frames)
    _positive_int("size", size)
    _positive_int("n_digits", n_digits)
    source = _digit_tensor(digits, size)
    h, w = source.shape[1:]
    generator = torch.Generator().manual_seed(int(seed))
    # 1. which digits, where they start, which way they go (drawn in this order: part of the seed's meaning)
    choice = torch.randint(len(source), (n_sequences, n_digits), generator=generator)  # (N, D)
    start = torch.rand((n_sequences, n_digits, 2), generator=generator, dtype=torch.float64)  # (N, D, 2) as (y, x)
    theta = torch.rand((n_sequences, n_digits), generator=generator, dtype=torch.float64) * (2 * math.pi)  # (N, D)
    velocity = torch.stack([torch.sin(theta), torch.cos(theta)], dim=-1) * step_length  # (N, D, 2)
    # 2. bounce, then scale [0, 1] positions to pixel corners in [0, size - h] x [0, size - w]
    positions = bounce_trajectory(start, velocity, n_frames)  # (N, D, T, 2)
    free = torch.tensor([size - h, size - w], dtype=torch.float64)
    corners = (positions * free).floor().long().permute(0, 2, 1, 3)  # (N, D, T, 2) -> (N, T, D, 2)
    # 3. draw
    frames = paste_digits(source[choice], corners, size)  # source[choice]: (N, D, h, w) -> frames (N, T, S, S)
    return frames.unsqueeze(2)  # (N, T, S, S) -> (N, T, 1, S, S)


def _mnist_digits(split: str, data_dir: str | os.PathLike[str] | None) -> torch.Tensor:
    """MNIST ``split`` digits as uint8 ``(N, 28, 28)``; DataNotFoundError propagates unchanged."""
    from ganforge.data.registry import load  # late: the registry may import this module to register it

    return load("mnist", split, data_dir).images[:, 0]  # (N, 1, 28, 28) -> (N, 28, 28)


def _batch_seed(seed: int, index: int) -> int:
    """A 64-bit seed for batch ``index`` of stream ``seed``, well mixed so no two (seed, index) collide."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0])


class MovingMNIST:
    """An endless Moving MNIST training stream, drawn on the fly from MNIST *training* digits.

    Batch ``k`` is ``moving_mnist(..., seed=f(seed, k))``: a pure function of (seed, k), so setting
    ``position = k`` replays exactly what a straight run saw at batch ``k`` (the same contract as
    ``ganforge.train.runtime.BatchStream``). ``next()`` returns ``(clips, None)`` with clips float32
    in [-1, 1] of shape ``(batch_size, n_frames, 1, size, size)``; ``None`` stands for labels.
    Pass ``digits`` (uint8 ``(N, h, w)``) to use other digits than MNIST, e.g. in tests.
    """

    def __init__(
        self,
        batch_size: int,
        *,
        digits: torch.Tensor | np.ndarray | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        n_frames: int = 20,
        size: int = 64,
        n_digits: int = 2,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        self.batch_size = _positive_int("batch_size", batch_size)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"seed must be an int >= 0, got {seed!r}")
        self.digits = _digit_tensor(_mnist_digits("train", data_dir) if digits is None else digits, size)
        self.n_frames = _positive_int("n_frames", n_frames)
        self.size = _positive_int("size", size)
        self.n_digits = _positive_int("n_digits", n_digits)
        self.seed = seed
        self.device = torch.device(device)
        self.position = 0

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        """``(T, C, H, W)`` of one clip."""
        return self.n_frames, 1, self.size, self.size

    def batch(self, index: int) -> torch.Tensor:
        """Batch ``index`` as uint8 ``(B, T, 1, H, W)``, without moving the stream."""
        return moving_mnist(
            self.digits, self.batch_size, self.n_frames, self.size, self.n_digits, seed=_batch_seed(self.seed, index)
        )

    def next(self) -> tuple[torch.Tensor, None]:
        """The batch at ``position`` as floats in [-1, 1] on ``device``; advances ``position``."""
        clips = self.batch(self.position)
        self.position += 1
        return to_model_range(clips).to(self.device), None


def moving_mnist_test_set(
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    n: int = 2000,
    seed: int = TEST_SET_SEED,
    *,
    n_frames: int = 20,
    size: int = 64,
    n_digits: int = 2,
    digits: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """The fixed Moving MNIST evaluation set, uint8 ``(n, n_frames, 1, size, size)``, built once and cached.

    Built from MNIST *test* digits (so no test digit was seen in training) or from ``digits``.
    Saved to ``cache_dir`` (default ``user_cache_dir() / "video"``, i.e. ``$XDG_CACHE_HOME/ganforge``
    or ``~/.cache/ganforge``) as an ``.npz`` plus a ``.json`` recording its sha256; later calls
    verify the hash and load the file, and a missing, corrupt or mismatched file is rebuilt
    (with a warning when it was there). The file name is a hash of the settings and of the
    digit source, so different settings never share a file. With the MNIST default a cached set
    loads without MNIST; to build it MNIST must be findable, else ``DataNotFoundError``.
    """
    for name, value in (("n", n), ("n_frames", n_frames), ("size", size), ("n_digits", n_digits)):
        _positive_int(name, value)
    source: torch.Tensor | None = None
    if digits is not None:
        source = _digit_tensor(digits, size)
        origin = "digits-sha256:" + _tensor_sha256(source)
    else:
        origin = "mnist-test"
    settings = {
        "version": _TEST_SET_VERSION, "source": origin, "n": n, "seed": int(seed), "n_frames": n_frames,
        "size": size, "n_digits": n_digits, "step_length": MOVING_MNIST_STEP,
    }  # fmt: skip
    key = _sha256_text(json.dumps(settings, sort_keys=True))
    folder = Path(cache_dir).expanduser() if cache_dir is not None else user_cache_dir() / "video"
    archive = folder / f"moving_mnist_test-{key[:16]}.npz"
    record = archive.with_suffix(".json")
    expected = (n, n_frames, 1, size, size)
    if archive.exists() or record.exists():
        try:
            return _load_cached(archive, record, expected)
        except ConfigError as exc:
            warnings.warn(f"{exc}; rebuilding it", UserWarning, stacklevel=2)
    if source is None:
        source = _mnist_digits("test", data_dir)
    clips = moving_mnist(source, n, n_frames, size, n_digits, seed=int(seed))
    _save_cached(clips, archive, record, settings)
    return clips


def _load_cached(archive: Path, record: Path, expected: tuple[int, ...]) -> torch.Tensor:
    try:
        meta = json.loads(record.read_text())
        actual = sha256_file(archive)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cached Moving MNIST test set {archive} is incomplete ({exc})") from None
    if not isinstance(meta, dict) or actual != meta.get("sha256"):
        raise ConfigError(f"cached Moving MNIST test set {archive} is corrupt: its sha256 does not match {record.name}")
    clips, _ = _read_array_file(archive)
    if tuple(clips.shape) != expected:
        raise ConfigError(f"cached Moving MNIST test set {archive} has shape {tuple(clips.shape)}, expected {expected}")
    return clips


def _save_cached(clips: torch.Tensor, archive: Path, record: Path, settings: dict[str, Any]) -> None:
    """Write the archive, then its record: a crash in between leaves a hash mismatch, hence a rebuild."""
    write_clips(clips, archive)
    meta = {**settings, "sha256": sha256_file(archive), "shape": list(clips.shape), "file": archive.name}
    with _atomic_write(record) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _tensor_sha256(x: torch.Tensor) -> str:
    digest = hashlib.sha256(str(tuple(x.shape)).encode())
    digest.update(x.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# training streams over clip files, and frame resizing


class ClipWindows:
    """An endless stream of ``window``-frame windows cut from stored clips (uint8 ``(N, T, C, H, W)``).

    Batch ``k`` picks clips and start frames with a generator seeded from (seed, k), so, like
    ``MovingMNIST``, setting ``position`` replays a straight run exactly. ``next()`` returns
    ``(windows, None)``, floats in [-1, 1] of shape ``(batch_size, window, C, H, W)`` on ``device``.
    """

    def __init__(self, clips: torch.Tensor, batch_size: int, window: int, *, seed: int = 0,
                 device: torch.device | str = "cpu"):
        if clips.dim() != 5 or clips.dtype != torch.uint8:
            raise ConfigError(f"clips must be uint8 (N, T, C, H, W), got {clips.dtype} {tuple(clips.shape)}")
        self.batch_size = _positive_int("batch_size", batch_size)
        self.window = _positive_int("window", window)
        if clips.shape[1] < window:
            raise ConfigError(
                f"the clips have {clips.shape[1]} frames, fewer than the {window} each training example needs "
                "(context + future frames, or the clip length); give longer clips or fewer frames"
            )
        self.clips = clips
        self.seed = int(seed)
        self.device = torch.device(device)
        self.position = 0

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        return (self.window, *self.clips.shape[2:])

    def batch(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(_batch_seed(self.seed, index))
        which = torch.randint(len(self.clips), (self.batch_size,), generator=g)
        start = torch.randint(self.clips.shape[1] - self.window + 1, (self.batch_size,), generator=g)
        frames = start[:, None] + torch.arange(self.window)  # (B, window)
        return self.clips[which[:, None], frames]  # (B, window, C, H, W)

    def next(self) -> tuple[torch.Tensor, None]:
        clips = self.batch(self.position)
        self.position += 1
        return to_model_range(clips).to(self.device), None


def resize_clips(clips: torch.Tensor, size: int) -> torch.Tensor:
    """Clips ``(N, T, C, H, W)`` with frames resized to ``size`` x ``size`` by area averaging (a
    downscale keeps the digits' ink, unlike nearest); same dtype back (uint8 rounded)."""
    n, t, c, h, w = clips.shape
    if (h, w) == (size, size):
        return clips
    x = torch.nn.functional.interpolate(clips.flatten(0, 1).float(), size=(size, size), mode="area")
    x = x.view(n, t, c, size, size)
    return x.round().clamp(0, 255).to(torch.uint8) if clips.dtype == torch.uint8 else x.to(clips.dtype)


class ResizedStream:
    """Wraps a clip stream (``next() -> (clips, None)``) and resizes its frames to ``size``."""

    def __init__(self, stream: Any, size: int):
        self.stream, self.size = stream, int(size)

    @property
    def position(self) -> int:
        return self.stream.position

    @position.setter
    def position(self, value: int) -> None:
        self.stream.position = value

    def next(self) -> tuple[torch.Tensor, None]:
        clips, labels = self.stream.next()
        return resize_clips(clips, self.size), labels
