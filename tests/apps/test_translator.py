"""Translator and `ganforge translate`: both directions on files, folders and arrays; bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.apps import Translator
from ganforge.cli import main
from ganforge.errors import ConfigError

NETS = ["--model-opt", "ngf=4", "--model-opt", "ndf=4", "--model-opt", "n_blocks=1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A CycleGAN trained for a few steps by the CLI: A = 16x16 digits, B = the same digits inverted."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("translate")
    digits = load_digits()
    x = np.kron((digits.images * 16).clip(0, 255).astype(np.uint8), np.ones((1, 2, 2), np.uint8))[:, None]
    np.savez(root / "a.npz", x_train=x[:400], x_test=x[1600:1660])
    np.savez(root / "b.npz", x_train=255 - x[400:800], x_test=255 - x[1600:1660])
    code = main(["translate", "train", "--a", str(root / "a.npz"), "--b", str(root / "b.npz"), "--steps", "6",
                 "--batch-size", "4", "--out", str(root / "run"), "--no-progress", "--threads", "1",
                 "--identity-weight", "0", *NETS])
    assert code == 0
    return root / "run"


def test_cli_train_wrote_a_run_with_the_reference_defaults(run_dir):
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["model"] == "cyclegan" and config["loss"] == "lsgan" and config["lr_decay"] == "linear"
    assert config["cycle_weight"] == 10.0 and config["pool_size"] == 50 and config["identity_weight"] == 0.0
    assert (run_dir / "checkpoints" / "step_000006").is_dir()


def test_translate_keeps_size_for_any_image(run_dir):
    translator = Translator.load(run_dir)
    for size in [(16, 16), (13, 17), (5, 3)]:  # not multiples of 4: padded and cropped back
        x = torch.randint(0, 256, (2, 1, *size), dtype=torch.uint8)
        for direction in ("a2b", "b2a"):
            y = translator.translate(x, direction)
            assert y.shape == (2, 1, *size) and y.abs().max() <= 1


def test_apply_folder_both_ways_keeps_names_sizes_and_modes(run_dir, tmp_path):
    src = tmp_path / "in"
    (src / "nested").mkdir(parents=True)
    Image.fromarray(np.full((16, 16), 200, np.uint8), "L").save(src / "gray.png")
    Image.fromarray(np.zeros((18, 14, 3), np.uint8), "RGB").save(src / "nested" / "colour.png")
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[..., 3] = 128
    Image.fromarray(rgba, "RGBA").save(src / "alpha.png")
    (src / "notes.txt").write_text("not an image")
    translator = Translator.load(run_dir)
    for direction in ("a2b", "b2a"):
        out = tmp_path / direction
        written = translator.apply(src, out, direction=direction)
        assert sorted(p.relative_to(out).as_posix() for p in written) == ["alpha.png", "gray.png",
                                                                          "nested/colour.png"]
        with Image.open(out / "gray.png") as im:
            assert im.mode == "L" and im.size == (16, 16)
        with Image.open(out / "nested" / "colour.png") as im:
            assert im.mode == "RGB" and im.size == (14, 18)  # a gray model: RGB in, RGB (gray) out
        with Image.open(out / "alpha.png") as im:
            assert im.mode == "RGBA" and np.asarray(im)[..., 3].max() == 128  # channels and alpha kept
    # and back: the a2b folder through b2a keeps the same names, sizes and modes
    back = translator.apply(tmp_path / "a2b", tmp_path / "back", direction="b2a")
    assert len(back) == 3
    for p in back:
        with Image.open(p) as im, Image.open(src / p.relative_to(tmp_path / "back")) as original:
            assert im.size == original.size and im.mode == original.mode


def test_apply_round_trip_and_arrays_keep_their_layout(run_dir, tmp_path):
    translator = Translator.load(run_dir)
    x = (np.arange(3 * 16 * 16) % 256).astype(np.uint8).reshape(3, 16, 16)
    np.save(tmp_path / "x.npy", x)
    translator.apply(tmp_path / "x.npy", tmp_path / "ab.npy", "a2b")
    translator.apply(tmp_path / "ab.npy", tmp_path / "aba.npy", "b2a")
    ab, aba = np.load(tmp_path / "ab.npy"), np.load(tmp_path / "aba.npy")
    assert ab.shape == aba.shape == (3, 16, 16) and aba.dtype == np.uint8
    expected = translator.translate(torch.from_numpy(ab)[:, None], "b2a")  # the second leg, from the file
    assert np.abs(aba.astype(int) - ((expected[:, 0] + 1) * 127.5).round().numpy().astype(int)).max() <= 1
    np.save(tmp_path / "f.npy", np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32))
    translator.apply(tmp_path / "f.npy", tmp_path / "g.npy", "b2a")
    g = np.load(tmp_path / "g.npy")
    assert g.dtype == np.float32 and g.shape == (2, 1, 8, 8) and 0 <= g.min() and g.max() <= 1


def test_bad_input_is_refused_with_a_reason(run_dir, tmp_path):
    translator = Translator.load(run_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no images"):
        translator.apply(tmp_path / "empty", tmp_path / "out", "a2b")
    np.save(tmp_path / "two.npy", np.zeros((1, 2, 8, 8), np.uint8))
    with pytest.raises(ConfigError, match="2-channel images"):
        translator.apply(tmp_path / "two.npy", tmp_path / "o.npy", "a2b")
    with pytest.raises(ConfigError, match="a2b or b2a"):
        translator.apply(tmp_path / "two.npy", tmp_path / "o.npy", "sideways")
    with pytest.raises(ConfigError, match="takes 1-channel"):
        translator.translate(torch.zeros(1, 3, 8, 8), "a2b")
    with pytest.raises(ConfigError, match="not trained"):
        Translator().translate(torch.zeros(1, 1, 8, 8))


def test_cli_apply_and_eval(run_dir, tmp_path, capsys):
    Image.fromarray(np.full((16, 16), 50, np.uint8), "L").save(tmp_path / "one.png")
    assert main(["translate", "apply", str(run_dir), "--direction", "b2a", "--in", str(tmp_path / "one.png"),
                 "--out", str(tmp_path / "res.png")]) == 0
    assert Image.open(tmp_path / "res.png").size == (16, 16)
    capsys.readouterr()
    assert main(["translate", "eval", str(run_dir), "--paired", "--n", "40", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["metric"] for r in records} >= {"cycle_l1_a", "cycle_l1_b", "l1_a2b", "l1_b2a"}
    assert all(r["step"] == 6 for r in records)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    names = {json.loads(line)["metric"] for line in lines}
    assert {"cycle_l1_a", "l1_a2b", "psnr_b2a", "ssim_a2b"} <= names


def test_cli_errors_exit_non_zero(tmp_path, capsys):
    assert main(["translate", "train", "--a", "digits", "--steps", "2"]) == 2
    assert "--b" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["translate", "train", "--a", str(tmp_path / "empty"), "--b", "digits", "--steps", "2",
                 "--out", str(tmp_path / "r")]) == 2
    assert str(tmp_path / "empty") in capsys.readouterr().err
    assert main(["translate", "apply", str(tmp_path), "--direction", "a2b", "--in", "x", "--out", "y"]) == 2


def test_noise_to_image_commands_point_to_translate(run_dir, tmp_path, capsys):
    assert main(["sample", str(run_dir), "--out", str(tmp_path / "x.png")]) == 2
    assert "translate apply" in capsys.readouterr().err
    assert main(["info", str(run_dir)]) == 0
    assert "<->" in capsys.readouterr().out  # both domains shown
