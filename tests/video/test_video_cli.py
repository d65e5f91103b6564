"""`ganforge video` and the VideoPredictor / VideoGenerator facades, end to end on tiny runs."""

import json

import numpy as np
import pytest
from PIL import Image
from video_helpers import GENERATE_NET, PREDICT_NET

from ganforge.apps.video import VideoGenerator, VideoPredictor
from ganforge.cli import main
from ganforge.data.video import read_clips
from ganforge.errors import ConfigError

TRAIN = ["--steps", "4", "--batch-size", "4", "--log-every", "2", "--no-progress", "--threads", "1"]


def _opts(net):
    out = []
    for k, v in net.items():
        out += ["--model-opt", f"{k}={v}"]
    return out


@pytest.fixture(scope="module")
def predict_run(tmp_path_factory, clip_file):
    run = tmp_path_factory.mktemp("video") / "predict"
    assert main(["video", "train", "--task", "predict", "--data", str(clip_file), "--context-frames", "4",
                 "--future-frames", "3", "--out", str(run), *TRAIN, *_opts(PREDICT_NET)]) == 0
    return run


@pytest.fixture(scope="module")
def generate_run(tmp_path_factory, clip_file):
    run = tmp_path_factory.mktemp("video") / "generate"
    assert main(["video", "train", "--task", "generate", "--data", str(clip_file), "--clip-frames", "5",
                 "--out", str(run), *TRAIN, *_opts(GENERATE_NET)]) == 0
    return run


def test_train_writes_a_run(predict_run):
    record = json.loads((predict_run / "config.json").read_text())
    assert record["config"]["model"] == "video_predict" and record["config"]["future_frames"] == 3
    assert (predict_run / "checkpoints" / "step_000004").is_dir()


def test_predict_keeps_the_input_layout_and_dtype(predict_run, clip_file, tmp_path):
    clips, _ = read_clips(clip_file)
    one = clips[0, :, 0].numpy()  # (T, H, W) uint8: one clip without a channel axis
    np.save(tmp_path / "one.npy", one)
    assert main(["video", "predict", str(predict_run), "--in", str(tmp_path / "one.npy"), "--frames", "5",
                 "--out", str(tmp_path / "pred.npy")]) == 0
    pred = np.load(tmp_path / "pred.npy")
    assert pred.shape == (5, 32, 32) and pred.dtype == np.uint8
    batch = (clips[:3].numpy() / 255.0).astype(np.float32)  # (N, T, C, H, W) floats in [0, 1]
    np.save(tmp_path / "batch.npy", batch)
    assert main(["video", "predict", str(predict_run), "--in", str(tmp_path / "batch.npy"),
                 "--out", str(tmp_path / "pred_batch.npy")]) == 0
    pred = np.load(tmp_path / "pred_batch.npy")
    assert pred.shape == (3, 3, 1, 32, 32) and pred.dtype == np.float32 and 0 <= pred.min() <= pred.max() <= 1
    # the same prediction through the API: the last 4 frames are the context
    api = VideoPredictor.load(predict_run).predict(batch)
    np.testing.assert_allclose(api, pred, atol=1 / 255 + 1e-6)
    api_tail = VideoPredictor.load(predict_run).predict(batch[:, -4:])
    np.testing.assert_array_equal(api, api_tail)


def test_predict_to_gif_shows_context_then_prediction(predict_run, clip_file, tmp_path):
    clips, _ = read_clips(clip_file)
    np.save(tmp_path / "c.npy", clips[0].numpy())  # (T, 1, H, W)
    assert main(["video", "predict", str(predict_run), "--in", str(tmp_path / "c.npy"), "--frames", "6",
                 "--out", str(tmp_path / "pred.gif")]) == 0
    with Image.open(tmp_path / "pred.gif") as gif:
        assert gif.n_frames == 4 + 6


def test_predict_bad_inputs(predict_run, tmp_path, capsys):
    np.save(tmp_path / "short.npy", np.zeros((3, 32, 32), np.uint8))  # 3 frames < 4 context frames
    assert main(["video", "predict", str(predict_run), "--in", str(tmp_path / "short.npy"), "--out",
                 str(tmp_path / "p.npy")]) != 0
    assert "fewer than the 4 context frames" in capsys.readouterr().err
    np.save(tmp_path / "big.npy", np.zeros((6, 48, 48), np.uint8))
    assert main(["video", "predict", str(predict_run), "--in", str(tmp_path / "big.npy"), "--out",
                 str(tmp_path / "p.npy")]) != 0
    assert "1x48x48" in capsys.readouterr().err
    np.save(tmp_path / "odd.npy", np.zeros((6, 2, 32, 32), np.uint8))  # 2 channels
    assert main(["video", "predict", str(predict_run), "--in", str(tmp_path / "odd.npy"), "--out",
                 str(tmp_path / "p.npy")]) != 0
    assert "C must be 1 or 3" in capsys.readouterr().err


def test_sample_and_wrong_task(generate_run, predict_run, tmp_path, capsys):
    assert main(["video", "sample", str(generate_run), "--n", "3", "--out", str(tmp_path / "s.npy")]) == 0
    clips = np.load(tmp_path / "s.npy")
    assert clips.shape == (3, 5, 1, 32, 32) and clips.dtype == np.uint8
    assert main(["video", "sample", str(generate_run), "--n", "2", "--frames", "7", "--out",
                 str(tmp_path / "s.gif")]) == 0
    with Image.open(tmp_path / "s.gif") as gif:
        assert gif.n_frames == 7 and gif.size == (2 * 32 + 2, 32)
    assert main(["video", "sample", str(predict_run), "--out", str(tmp_path / "x.gif")]) != 0
    assert "VideoPredictor" in capsys.readouterr().err
    assert main(["sample", str(generate_run), "--out", str(tmp_path / "x.png")]) != 0
    assert "ganforge video" in capsys.readouterr().err


def test_eval_appends_scores_with_protocol(predict_run, clip_file, capsys):
    assert main(["video", "eval", str(predict_run), "--test", str(clip_file), "--n", "8", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["metric"] for r in records} == {"mse", "mae", "psnr", "ssim", "sharpness", "gradient_ratio"}
    stored = [json.loads(line) for line in (predict_run / "metrics.jsonl").read_text().splitlines()]
    assert stored[-1]["protocol"]["n_real"] == 8 and stored[-1]["step"] == 4


def test_facades_fit_arrays(tmp_path, clip_file):
    clips, _ = read_clips(clip_file)
    array = clips[:16, :, 0].numpy()  # (N, T, H, W): a channel axis is added
    predictor = VideoPredictor(steps=2, batch_size=4, context_frames=4, future_frames=2, out=tmp_path / "p",
                               progress=False, device="cpu", **PREDICT_NET).fit(array)
    assert predictor.predict(array[:2, :5, None], n_frames=3).shape == (2, 3, 1, 32, 32)
    assert (tmp_path / "p" / "training_clips.npy").is_file()
    generator = VideoGenerator(steps=2, batch_size=4, clip_frames=4, out=tmp_path / "g", progress=False,
                               device="cpu", **GENERATE_NET).fit(array)
    assert generator.sample(2, seed=1).shape == (2, 4, 1, 32, 32)
    assert np.array_equal(generator.sample(2, seed=1), generator.sample(2, seed=1))
    with pytest.raises(ConfigError, match="context-frames"):
        VideoPredictor(context_frames=0)
