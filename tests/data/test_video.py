"""Video clips (reading, writing) and Moving MNIST, with synthetic digits: MNIST is never available here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import video
from ganforge.data.video import (
    ClipLayout,
    MovingMNIST,
    bounce_trajectory,
    moving_mnist,
    moving_mnist_test_set,
    natural_key,
    paste_digits,
    read_clips,
    write_clips,
)
from ganforge.errors import ConfigError, DataNotFoundError


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """scikit-learn's 8x8 digits, 3x upscaled and padded to MNIST's 28x28: uint8 (50, 28, 28)."""
    from sklearn.datasets import load_digits

    small = np.rint(load_digits().images[:50] * (255.0 / 16.0)).astype(np.uint8)  # (50, 8, 8)
    big = small.repeat(3, axis=1).repeat(3, axis=2)  # (50, 24, 24)
    return torch.from_numpy(np.pad(big, ((0, 0), (2, 2), (2, 2))))  # (50, 28, 28)


def _squares(value: int = 255, n: int = 4, side: int = 8, inner: int = 4) -> torch.Tensor:
    """``n`` uint8 (side, side) digits: a centred ``inner`` square of ``value`` on black."""
    out = torch.zeros((n, side, side), dtype=torch.uint8)
    lo = (side - inner) // 2
    out[:, lo : lo + inner, lo : lo + inner] = value
    return out


def _png(path: Path, value: int | tuple[int, int, int], size: tuple[int, int] = (6, 5)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if isinstance(value, int) else "RGB"
    Image.new(mode, (size[1], size[0]), value).save(path)


# ---------------------------------------------------------------------------------------------
# Moving MNIST


def test_moving_mnist_shape_dtype_and_digits_from_the_source(digits: torch.Tensor) -> None:
    clips = moving_mnist(digits, n_sequences=3, n_frames=5, size=40, n_digits=2, seed=0)
    assert clips.shape == (3, 5, 1, 40, 40) and clips.dtype == torch.uint8
    assert clips.amax() > 0 and set(clips.unique().tolist()) <= set(digits.unique().tolist())


def test_moving_mnist_is_deterministic_per_seed(digits: torch.Tensor) -> None:
    before = torch.random.get_rng_state()
    a = moving_mnist(digits, 4, n_frames=6, size=48, seed=7)
    assert torch.equal(a, moving_mnist(digits, 4, n_frames=6, size=48, seed=7))
    assert not torch.equal(a, moving_mnist(digits, 4, n_frames=6, size=48, seed=8))
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is never used


def test_digits_stay_inside_the_frame() -> None:
    # One digit per sequence: if it ever left the frame, part of its mass would be cut off.
    squares = _squares(value=200, side=10, inner=10)
    clips = moving_mnist(squares, n_sequences=50, n_frames=30, size=24, n_digits=1, seed=3)
    mass = clips.flatten(2).sum(dim=2)  # (N, T, 1, H, W) -> (N, T)
    assert torch.all(mass == 200 * 100)


def test_digits_move_at_the_reference_speed() -> None:
    # A bright pixel at the digit's corner tracks it: 0.1 of the free range per frame, away from walls.
    digit = torch.zeros((1, 8, 8), dtype=torch.uint8)
    digit[0, 0, 0] = 255
    clips = moving_mnist(digit, n_sequences=20, n_frames=2, size=208, n_digits=1, seed=0)  # free range 200
    corner = [np.argwhere(frame[0].numpy() == 255)[0] for frame in clips.flatten(0, 1)]
    steps = np.linalg.norm(np.diff(np.array(corner).reshape(20, 2, 2), axis=1)[:, 0], axis=1)
    inside = steps > 0  # a start within one step of a wall is clamped there
    assert inside.sum() >= 15 and np.allclose(steps[inside], 20.0, atol=1.5)


def test_bounce_reverses_at_the_right_and_left_walls() -> None:
    start = torch.tensor([[0.5, 0.85], [0.3, 0.15]])  # (y, x)
    velocity = torch.tensor([[0.0, 0.1], [0.0, -0.1]])
    path = bounce_trajectory(start, velocity, n_frames=6)  # (2, 6, 2)
    assert path.shape == (2, 6, 2)
    right, left = path[0, :, 1].tolist(), path[1, :, 1].tolist()
    assert right == pytest.approx([0.85, 0.95, 1.0, 0.9, 0.8, 0.7])  # touches the wall, comes back
    assert left == pytest.approx([0.15, 0.05, 0.0, 0.1, 0.2, 0.3])
    assert path[0, :, 0].tolist() == pytest.approx([0.5] * 6) and path[1, :, 0].tolist() == pytest.approx([0.3] * 6)


def test_bounce_keeps_every_position_in_the_unit_square() -> None:
    g = torch.Generator().manual_seed(0)
    start = torch.rand((100, 2), generator=g)
    velocity = (torch.rand((100, 2), generator=g) - 0.5) * 0.6
    path = bounce_trajectory(start, velocity, n_frames=50)
    assert path.min() >= 0.0 and path.max() <= 1.0


def test_overlapping_digits_combine_by_max() -> None:
    patches = torch.tensor([[100, 200], [200, 100]], dtype=torch.uint8)[:, :, None, None].expand(2, 2, 3, 3)
    corners = torch.zeros((2, 1, 2, 2), dtype=torch.long)  # both digits at (0, 0) in one frame
    corners[:, 0, 1] = torch.tensor([1, 1])  # second digit shifted by one pixel: partial overlap
    frames = paste_digits(patches.contiguous(), corners, size=5)  # (2, 1, 5, 5)
    assert frames[0, 0, 1, 1] == 200 and frames[1, 0, 1, 1] == 200  # overlap = max, whatever the order
    assert frames[0, 0, 0, 0] == 100 and frames[0, 0, 3, 3] == 200 and frames[0, 0, 4, 4] == 0
    # Saturated digits piled on each other stay at 255: a sum would overflow uint8.
    clips = moving_mnist(_squares(255, side=8, inner=8), n_sequences=10, n_frames=8, size=12, n_digits=4, seed=0)
    assert set(clips.unique().tolist()) == {0, 255}


def test_moving_mnist_rejects_bad_digits() -> None:
    with pytest.raises(ConfigError, match="uint8"):
        moving_mnist(torch.zeros((2, 28, 28)), 1)
    with pytest.raises(ConfigError, match="do not fit"):
        moving_mnist(torch.zeros((2, 28, 28), dtype=torch.uint8), 1, size=20)
    with pytest.raises(ConfigError, match="n_sequences"):
        moving_mnist(torch.zeros((2, 28, 28), dtype=torch.uint8), 0)
    with pytest.raises(ConfigError, match="corners"):  # a corner past the edge would wrap into the next row
        paste_digits(torch.ones((1, 1, 3, 3), dtype=torch.uint8), torch.full((1, 1, 1, 2), 3), size=5)


# ---------------------------------------------------------------------------------------------
# training stream and cached test set


def test_stream_batch_k_equals_a_resumed_stream_at_k(digits: torch.Tensor) -> None:
    def stream() -> MovingMNIST:
        return MovingMNIST(3, digits=digits, n_frames=4, size=32, seed=5)

    straight = stream()
    batches = [straight.next()[0] for _ in range(4)]
    assert straight.position == 4
    resumed = stream()
    resumed.position = 3
    clips, labels = resumed.next()
    assert labels is None and resumed.position == 4
    assert torch.equal(clips, batches[3])
    assert clips.shape == (3, 4, 1, 32, 32) and clips.dtype == torch.float32
    assert clips.min() >= -1 and clips.max() <= 1
    assert not torch.equal(batches[0], batches[1])
    assert not torch.equal(MovingMNIST(3, digits=digits, n_frames=4, size=32, seed=6).next()[0], batches[0])


def test_stream_and_test_set_need_mnist_when_no_digits_are_given(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="mnist"):
        MovingMNIST(2)
    with pytest.raises(DataNotFoundError, match="mnist"):
        moving_mnist_test_set(cache_dir=tmp_path, n=2)


def test_stream_uses_mnist_train_and_test_set_mnist_test(tmp_path: Path) -> None:
    train, test = np.full((12, 28, 28), 100, dtype=np.uint8), np.full((5, 28, 28), 200, dtype=np.uint8)
    labels = np.arange(12) % 10
    np.savez(tmp_path / "mnist.npz", x_train=train, y_train=labels, x_test=test, y_test=labels[:5])
    clips, _ = MovingMNIST(2, data_dir=tmp_path, n_frames=3).next()
    assert torch.allclose(clips.unique(), torch.tensor([-1.0, 100 / 127.5 - 1]))  # train digits only
    fixed = moving_mnist_test_set(data_dir=tmp_path, cache_dir=tmp_path / "cache", n=3, n_frames=3)
    assert fixed.shape == (3, 3, 1, 64, 64) and set(fixed.unique().tolist()) == {0, 200}  # test digits only


def test_test_set_is_cached_verified_and_rebuilt_when_corrupt(
    digits: torch.Tensor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = []
    real = video.moving_mnist
    monkeypatch.setattr(video, "moving_mnist", lambda *a, **k: builds.append(1) or real(*a, **k))
    settings = dict(cache_dir=tmp_path, n=6, n_frames=4, size=32, digits=digits)

    first = moving_mnist_test_set(**settings)
    assert first.shape == (6, 4, 1, 32, 32) and len(builds) == 1
    (archive,) = tmp_path.glob("*.npz")
    assert len(list(tmp_path.glob("*.json"))) == 1
    stamp = archive.stat().st_mtime_ns

    again = moving_mnist_test_set(**settings)
    assert torch.equal(again, first) and len(builds) == 1 and archive.stat().st_mtime_ns == stamp

    other = moving_mnist_test_set(**{**settings, "seed": 2})  # other settings: another file
    assert len(builds) == 2 and not torch.equal(other, first) and len(list(tmp_path.glob("*.npz"))) == 2

    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupt"):
        rebuilt = moving_mnist_test_set(**settings)
    assert torch.equal(rebuilt, first) and len(builds) == 3
    assert torch.equal(moving_mnist_test_set(**settings), first) and len(builds) == 3
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]  # no temporary files left behind


def test_test_set_defaults_to_the_user_cache(digits: torch.Tensor, isolated_data_env: Path) -> None:
    moving_mnist_test_set(n=2, n_frames=2, size=28, digits=digits)
    assert len(list((isolated_data_env / ".cache" / "ganforge" / "video").glob("*.npz"))) == 1


# ---------------------------------------------------------------------------------------------
# reading and writing


def test_npy_one_grayscale_clip_round_trips_in_its_layout(tmp_path: Path) -> None:
    array = np.random.default_rng(0).integers(0, 256, (5, 6, 7), dtype=np.uint8)  # (T, H, W)
    np.save(tmp_path / "in.npy", array)
    clips, layout = read_clips(tmp_path / "in.npy")
    assert clips.shape == (1, 5, 1, 6, 7) and clips.dtype == torch.uint8
    assert layout == ClipLayout(kind="array", batched=False, channel_axis=False, dtype="uint8")
    assert torch.equal(clips[0, :, 0], torch.from_numpy(array))
    out = np.load(write_clips(clips, tmp_path / "out.npy", layout))
    assert out.dtype == np.uint8 and np.array_equal(out, array)
    # several generated clips for a one-clip layout keep their batch and channel axes
    two = np.load(write_clips(torch.cat([clips, clips]), tmp_path / "two.npy", layout))
    assert two.shape == (2, 5, 1, 6, 7)
    # model output in [-1, 1] is written as pixels
    model = write_clips(clips.float() / 127.5 - 1, tmp_path / "model.npy", layout)
    assert np.array_equal(np.load(model), array)


def test_npy_float_clip_with_channels_round_trips_as_float(tmp_path: Path) -> None:
    array = np.random.default_rng(1).random((4, 3, 5, 5)).astype(np.float32)  # (T, C, H, W) in [0, 1]
    np.save(tmp_path / "in.npy", array)
    clips, layout = read_clips(tmp_path / "in.npy")
    assert clips.shape == (1, 4, 3, 5, 5) and layout.dtype == "float32" and layout.channel_axis
    assert np.allclose(clips[0].numpy() / 255.0, array, atol=0.5 / 255 + 1e-6)
    out = np.load(write_clips(clips, tmp_path / "out.npy", layout))
    assert out.dtype == np.float32 and out.shape == (4, 3, 5, 5)
    assert out.min() >= 0 and out.max() <= 1 and np.allclose(out, array, atol=0.5 / 255 + 1e-6)


def test_batch_array_and_npz_round_trip(tmp_path: Path) -> None:
    array = np.random.default_rng(2).integers(0, 256, (3, 4, 1, 6, 6), dtype=np.uint8)  # (N, T, C, H, W)
    np.save(tmp_path / "in.npy", array)
    clips, layout = read_clips(tmp_path / "in.npy")
    assert torch.equal(clips, torch.from_numpy(array)) and layout.batched
    assert np.array_equal(np.load(write_clips(clips, tmp_path / "out.npy", layout)), array)
    assert np.array_equal(np.load(write_clips(clips, tmp_path / "plain.npy")), array)  # default layout
    np.savez(tmp_path / "in.npz", video=array)
    clips, layout = read_clips(tmp_path / "in.npz")
    assert layout.key == "video" and torch.equal(clips, torch.from_numpy(array))
    with np.load(write_clips(clips, tmp_path / "out.npz", layout)) as archive:
        assert archive.files == ["video"] and np.array_equal(archive["video"], array)


def test_natural_order() -> None:
    names = ["frame10.png", "frame2.png", "Frame1.png", "frame_b.png", "frame_a.png"]
    assert sorted(names, key=natural_key) == ["Frame1.png", "frame2.png", "frame10.png", "frame_a.png", "frame_b.png"]


def test_folder_of_frames_is_one_clip_in_natural_order(tmp_path: Path) -> None:
    for value in (10, 2, 1, 33):
        _png(tmp_path / "clip" / f"frame{value}.png", value)
    (tmp_path / "clip" / "notes.txt").write_text("not a frame")
    clips, layout = read_clips(tmp_path / "clip")
    assert clips.shape == (1, 4, 1, 6, 5) and layout.kind == "frames" and not layout.batched
    assert clips[0, :, 0, 0, 0].tolist() == [1, 2, 10, 33]
    written = write_clips(clips, tmp_path / "copy")  # no suffix: PNG frames
    again, _ = read_clips(written)
    assert torch.equal(again, clips)


def test_folder_of_clip_folders(tmp_path: Path) -> None:
    for clip in ("clip10", "clip2"):
        for t in range(3):
            _png(tmp_path / "clips" / clip / f"f{t}.png", (int(clip[4:]), t, 0))
    clips, layout = read_clips(tmp_path / "clips")
    assert clips.shape == (2, 3, 3, 6, 5) and layout.kind == "clip_folders" and layout.batched
    assert clips[:, :, :, 0, 0].tolist() == [[[2, t, 0] for t in range(3)], [[10, t, 0] for t in range(3)]]
    again, _ = read_clips(write_clips(clips, tmp_path / "copy"))
    assert torch.equal(again, clips)


def test_gif_round_trip_grayscale_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    clip = torch.from_numpy(rng.integers(0, 256, (1, 6, 1, 10, 12), dtype=np.uint8))
    clip[0, 3] = clip[0, 2]  # identical consecutive frames: Pillow merges them, read_clips splits them back
    path = write_clips(clip, tmp_path / "one.gif", fps=8)
    again, layout = read_clips(path)
    assert layout.kind == "gif" and layout.fps == pytest.approx(8)
    assert torch.equal(again, clip)


def test_gif_tiles_clips_side_by_side(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    clips = torch.from_numpy(rng.integers(0, 256, (3, 4, 3, 8, 6), dtype=np.uint8))  # colour
    movie, _ = read_clips(write_clips(clips, tmp_path / "three.gif", padding=2))
    assert movie.shape == (1, 4, 3, 8, 3 * 6 + 2 * 2)
    tiles = [movie[0, :, :, :, x : x + 6] for x in (0, 8, 16)]
    for tile, clip in zip(tiles, clips, strict=True):  # colour is quantised to 256: approximately equal
        assert (tile.float() - clip.float()).abs().mean() < 20
    assert movie[0, :, :, :, 6:8].max() == 0  # black padding between the tiles
    grid, _ = read_clips(write_clips(clips, tmp_path / "grid.gif", columns=2, padding=0))
    assert grid.shape == (1, 4, 3, 16, 12)


def test_mp4_without_imageio_ffmpeg_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video, "_have_ffmpeg", lambda: False)
    clips = torch.zeros((1, 2, 1, 4, 4), dtype=torch.uint8)
    with pytest.raises(ConfigError, match="pip install imageio-ffmpeg") as error:
        write_clips(clips, tmp_path / "out.mp4")
    assert "out.mp4" in str(error.value) and ".gif" in str(error.value)
    (tmp_path / "in.mp4").write_bytes(b"not really a video")
    with pytest.raises(ConfigError, match="pip install imageio-ffmpeg") as error:
        read_clips(tmp_path / "in.mp4")
    assert "in.mp4" in str(error.value)


def test_mp4_round_trip_when_imageio_ffmpeg_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    clips = torch.zeros((1, 5, 1, 16, 16), dtype=torch.uint8)
    clips[0, :, 0, 4:12, 4:12] = 200
    again, layout = read_clips(write_clips(clips, tmp_path / "clip.mp4", fps=5))
    assert layout.kind == "mp4" and again.shape == (1, 5, 1, 16, 16)
    assert (again.float() - clips.float()).abs().mean() < 10  # H.264 is lossy


# ---------------------------------------------------------------------------------------------
# bad inputs: a ConfigError that names the file


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    cases = {}
    cases["missing"] = tmp_path / "nowhere.npy"
    cases["empty folder"] = tmp_path / "empty_folder"
    cases["empty folder"].mkdir()
    cases["unknown extension"] = tmp_path / "clip.avi_unknown"
    cases["unknown extension"].write_bytes(b"x")
    cases["2-D array"] = tmp_path / "flat.npy"
    np.save(cases["2-D array"], np.zeros((4, 4), dtype=np.uint8))
    cases["6-D array"] = tmp_path / "deep.npy"
    np.save(cases["6-D array"], np.zeros((1, 1, 1, 1, 1, 1), dtype=np.uint8))
    cases["channels last"] = tmp_path / "channels_last.npy"
    np.save(cases["channels last"], np.zeros((2, 8, 8, 5), dtype=np.uint8))
    cases["float out of range"] = tmp_path / "hot.npy"
    np.save(cases["float out of range"], np.full((2, 4, 4), 1.5, dtype=np.float32))
    cases["several npz arrays"] = tmp_path / "many.npz"
    np.savez(cases["several npz arrays"], a=np.zeros((2, 4, 4)), b=np.zeros((2, 4, 4)))
    cases["truncated npy"] = tmp_path / "cut.npy"
    cases["truncated npy"].write_bytes(b"\x93NUMPY\x01\x00")
    unequal = tmp_path / "unequal_lengths"
    for t in range(3):
        _png(unequal / "a" / f"{t}.png", 1)
    for t in range(2):
        _png(unequal / "b" / f"{t}.png", 1)
    cases["unequal lengths"] = unequal
    sizes = tmp_path / "unequal_sizes"
    _png(sizes / "a" / "0.png", 1, size=(6, 5))
    _png(sizes / "b" / "0.png", 1, size=(7, 5))
    cases["unequal sizes"] = sizes
    broken = tmp_path / "broken_frames"
    _png(broken / "0.png", 1)
    (broken / "1.png").write_bytes(b"not a png")
    cases["corrupt frame"] = broken / "1.png"  # the message names the bad frame, not just its folder
    cases["corrupt gif"] = tmp_path / "broken.gif"
    cases["corrupt gif"].write_bytes(b"GIF89a")
    return cases


def test_bad_inputs_raise_config_errors_naming_the_file(tmp_path: Path) -> None:
    for case, path in _bad_inputs(tmp_path).items():
        with pytest.raises(ConfigError) as error:
            read_clips(path.parent if case == "corrupt frame" else path)
        assert path.name in str(error.value), case


def test_bad_outputs_raise_config_errors(tmp_path: Path) -> None:
    clips = torch.zeros((1, 2, 1, 4, 4), dtype=torch.uint8)
    with pytest.raises(ConfigError, match="out.webp"):
        write_clips(clips, tmp_path / "out.webp")
    with pytest.raises(ConfigError, match="C = 1|C in 1/3"):
        write_clips(torch.zeros((2, 2, 5, 4, 4), dtype=torch.uint8), tmp_path / "x.npy")
    _png(tmp_path / "taken" / "frame0.png", 1)
    with pytest.raises(ConfigError, match="already holds images"):
        write_clips(clips, tmp_path / "taken")
