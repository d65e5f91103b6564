"""The text-to-image GAN: its loss, one step, resume, the TextToImage facade, the CLI and the scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from ganforge.cli import main
from ganforge.data.spec import DataSpec
from ganforge.data.text import (
    FASHION_VOCABULARY,
    KeywordEncoder,
    Prompt,
    SmallTextEncoder,
    load_builtin_captioned,
)
from ganforge.errors import ConfigError
from ganforge.losses import get_loss
from ganforge.monitor import Collector, read_stats
from ganforge.nets.text2image import Config, build
from ganforge.train import RunConfig
from ganforge.train.text_run import load_text2image, train_text2image
from ganforge.train.text_step import TextGANStep, matching_aware_discriminator_loss, mismatch_allowed

TINY = {"ngf": 8, "ndf": 8, "z_dim": 8, "ca_dim": 8}
TINY_FLAGS = [f"--model-opt={k}={v}" for k, v in TINY.items()]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """Keep embedding caches (and judges) out of the developer's ~/.cache."""
    home = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))


@pytest.fixture(scope="module")
def digits():
    return load_builtin_captioned("digits")


@pytest.fixture(scope="module")
def encoder(digits):
    enc = SmallTextEncoder.build(digits.captions, seed=0)
    enc.fit(digits.captions, digits.groups(), steps=30)
    return enc


def _config(**kw) -> RunConfig:
    base = dict(model="text2image", data="digits", text_encoder="small", steps=6, batch_size=16, seed=3,
                model_config=TINY, log_every=2, sample_every=3, checkpoint_every=3, progress=False, doctor=False,
                report=False, threads=1)
    return RunConfig(**{**base, **kw})


# --- the objective ---------------------------------------------------------------------------------------------
def test_matching_aware_loss_equals_its_hand_computed_value():
    r, m, f = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.5]), torch.tensor([-3.0, 0.0])
    sp = F.softplus
    for w in (0.5, 0.25):
        expected = sp(-r).mean() + (1 - w) * sp(f).mean() + w * sp(m).mean()
        got = matching_aware_discriminator_loss(get_loss("non_saturating"), r, m, f, w)
        assert torch.allclose(got, expected)
    # hinge, by hand: mean(relu(1 - r)) + ½ mean(relu(1 + f)) + ½ mean(relu(1 + m))
    hinge = matching_aware_discriminator_loss(get_loss("hinge"), r, m, f, 0.5)
    assert float(hinge) == pytest.approx((0 + 2) / 2 + 0.5 * (0 + 1) / 2 + 0.5 * (1.5 + 2.5) / 2)


def test_mismatches_say_something_else():
    labels = torch.tensor([0, 0, 0, 1, -1, -1])
    attrs = torch.tensor([0, 1, -1, 0, -1, -1])
    i, j = torch.tensor([0, 0, 0, 0, 4, 4]), torch.tensor([1, 2, 3, 0, 5, 4])
    # another attribute: yes; same class without attribute: no; another class: yes; itself: no; unknown: other text
    assert mismatch_allowed(labels, attrs, i, j).tolist() == [True, False, True, False, True, False]


def test_one_step_changes_both_networks_and_reports_the_stats(tmp_path):
    spec = DataSpec((1, 8, 8), cond_dim=6)
    torch.manual_seed(0)
    generator, discriminator = build(Config(**TINY), spec)
    embeddings = F.normalize(torch.randn(5, 6), dim=1)
    step = TextGANStep(generator, discriminator, get_loss("non_saturating"),
                       torch.optim.Adam(generator.parameters(), 1e-3),
                       torch.optim.Adam(discriminator.parameters(), 1e-3),
                       embeddings=embeddings, caption_labels=torch.tensor([0, 1, 2, 3, 4]),
                       noise=torch.Generator().manual_seed(0))
    before = {k: {n: p.detach().clone() for n, p in net.named_parameters()} for k, net in step.networks().items()}
    batch = (torch.rand(8, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 3, 4, 0, 1, 2]))
    with Collector(tmp_path / "stats.jsonl") as collector:
        losses = step([batch])
        collector.flush(1)
    for name, net in step.networks().items():
        moved = [n for n, p in net.named_parameters() if not torch.equal(p, before[name][n])]
        assert moved, f"{name} did not change"
    stats = next(iter(read_stats(tmp_path / "stats.jsonl")))
    for key in ("Loss/D", "Loss/G", "D/real", "D/fake", "D/mismatch", "D/acc_real", "D/acc_fake", "Grad/D", "Grad/G",
                "Loss/G/kl"):
        assert key in stats and np.isfinite(stats[key])
    assert torch.isfinite(losses["loss_d"]) and stats["Loss/G/kl"] > 0  # CA's KL is in G's loss


def test_discriminator_split_gives_the_same_logits():
    spec = DataSpec((1, 16, 16), cond_dim=4)
    for condition in ("projection", "concat"):
        _, d = build(Config(**TINY, condition=condition), spec)
        x, t = torch.randn(3, 1, 16, 16), torch.randn(3, 4)
        assert torch.allclose(d(x, None, t), d.match(d.features(x), t))


def test_unsupported_settings_are_refused():
    with pytest.raises(ConfigError, match="--pack"):
        train_text2image(_config(pack=2), "unused")
    with pytest.raises(ConfigError, match="brightness"):
        spec = DataSpec((1, 8, 8), cond_dim=2)
        g, d = build(Config(**TINY), spec)
        TextGANStep(g, d, get_loss("hinge"), torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters()),
                    embeddings=torch.randn(3, 2), noise=torch.Generator(), augment="color")


# --- training, resume and generation ---------------------------------------------------------------------------
def test_resume_gives_identical_weights(tmp_path, digits, encoder):
    straight = tmp_path / "straight"
    train_text2image(_config(), straight, data=digits, encoder=encoder)
    split = tmp_path / "split"
    train_text2image(_config(steps=3), split, data=digits, encoder=encoder)
    train_text2image(_config(steps=6), split, resume="auto", data=digits)  # the encoder comes from the run dir
    for name in ("generator", "discriminator"):
        a = load_file(str(straight / "checkpoints" / "step_000006" / f"{name}.safetensors"))
        b = load_file(str(split / "checkpoints" / "step_000006" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    stats = [json.loads(line) for line in (split / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [2, 3, 4, 6]  # step 3 ended the first session


def test_texttoimage_fits_arrays_with_captions_and_generates_deterministically(tmp_path):
    from ganforge.apps import TextToImage

    rng = np.random.default_rng(0)
    x = np.zeros((32, 8, 8), np.uint8)
    x[:16, :4] = 255  # bright top half
    x[16:, 4:] = 255  # bright bottom half
    x = np.clip(x.astype(int) + rng.integers(0, 30, x.shape), 0, 255).astype(np.uint8)
    captions = ["light on top"] * 16 + ["light at the bottom"] * 16
    t2i = TextToImage(encoder="small", steps=4, batch_size=8, model_config=TINY, progress=False, doctor=False,
                      report=False, threads=1).fit(x, captions, out=tmp_path / "run")
    images = t2i.generate(["light on top", "light at the bottom", "anything"], n_per_prompt=2, seed=5)
    assert images.shape == (6, 1, 8, 8) and float(images.abs().max()) <= 1
    again = TextToImage.load(tmp_path / "run").generate(["light on top", "light at the bottom", "anything"], 2, seed=5)
    assert torch.equal(images, again)
    assert not torch.equal(images[0], images[2])  # the text changes the image (same noise for image 0 of each)
    arr = t2i.generate("light on top", 3, as_numpy=True)
    assert arr.dtype == np.uint8 and arr.shape == (3, 1, 8, 8)
    with pytest.raises(ConfigError, match="at least one prompt"):
        t2i.generate([], 2)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2i-cli")
    code = main(["text2image", "train", "--data", "digits", "--encoder", "small", "--steps", "4", "--batch-size", "8",
                 "--out", str(root / "run"), "--no-progress", "--threads", "1", "--no-report", *TINY_FLAGS])
    assert code == 0
    return root / "run"


def test_cli_train_writes_a_run_with_the_encoder(cli_run):
    record = json.loads((cli_run / "config.json").read_text())
    assert record["config"]["model"] == "text2image" and record["config"]["text_encoder"] == "small"
    assert record["spec"]["cond_dim"] == 64 and record["text"]["vocabulary"]["name"] == "digits"
    assert (cli_run / "text_encoder" / "small_encoder.safetensors").is_file()
    assert (cli_run / "checkpoints" / "step_000004").is_dir() and list((cli_run / "samples").glob("*.png"))


def test_cli_generate_png_has_one_row_per_prompt_and_npz_has_x_and_prompt(cli_run, tmp_path):
    prompts = ["a bold seven", "a photo of a zero"]
    assert main(["text2image", "generate", str(cli_run), *prompts, "--n", "3", "--out", str(tmp_path / "g.png")]) == 0
    with Image.open(tmp_path / "g.png") as im:
        # 8x8 digits are enlarged to 32-pixel cells with 2-pixel padding: 2 rows, 3 columns
        assert im.size == (3 * 34 + 2, 2 * 34 + 2)
    assert main(["text2image", "generate", str(cli_run), *prompts, "--n", "3", "--out", str(tmp_path / "g.npz")]) == 0
    with np.load(tmp_path / "g.npz") as z:
        assert z["x"].shape == (6, 1, 8, 8) and z["x"].dtype == np.uint8
        assert z["prompt"].tolist() == [prompts[0]] * 3 + [prompts[1]] * 3
    assert main(["text2image", "generate", str(cli_run), "x", "--out", str(tmp_path / "g.jpg")]) == 2


def test_cli_resume_refuses_another_encoder(cli_run):
    assert main(["text2image", "train", "--out", str(cli_run), "--resume", "auto", "--encoder", "keywords"]) == 2


def test_loading_another_kind_of_run_is_explained(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"config": RunConfig().to_dict(), "spec": {"shape": [1, 8, 8]}}))
    with pytest.raises(ConfigError, match="not a text-to-image run"):
        load_text2image(tmp_path)


# --- scores ----------------------------------------------------------------------------------------------------
class StubJudge:
    """A judge that calls an image's class by its brightest column block: enough to check the bookkeeping."""

    name, weights_hash, feature_dim = "stub_cnn", "0" * 64, 2

    def predict(self, images):
        return images.flatten(1).argmax(1).numpy() // 64  # 8x8 images: one class per row block of 64 // ...

    def features(self, images):
        return images.flatten(1)[:, :2].numpy()


def test_evaluate_prompts_scores_consistency_and_attributes_by_split():
    from ganforge.metrics.text2image import evaluate_prompts

    thresholds = torch.tensor([[0.2, 0.4]] * 2)  # class median 0.3

    def generate(texts, n, seed):  # class 0 always; dark images when "dark" is asked, light otherwise
        out = []
        for t in texts:
            level = 0.1 if "dark" in t else 0.6
            out.append(torch.full((n, 1, 8, 8), level * 2 - 1))
        return torch.cat(out)

    prompts = [Prompt("a dark thing", 0, 0, False), Prompt("a light thing", 0, 1, False),
               Prompt("a dim thing", 1, 0, True), Prompt("a bright thing", 1, 1, True)]
    scores = {s.metric: s for s in evaluate_prompts(generate, prompts, judge=StubJudge(), thresholds=thresholds,
                                                     n_per_prompt=4)}
    assert scores["caption_consistency_seen_stub_cnn"].value == 1.0  # all class 0, as asked
    assert scores["caption_consistency_held_out_stub_cnn"].value == 0.0  # class 1 asked, class 0 made
    assert scores["attribute_accuracy_seen"].value == 1.0
    assert scores["attribute_accuracy_held_out"].value == 0.5  # "dim" is not understood by this generator
    assert scores["caption_consistency_seen_stub_cnn"].protocol.n_fake == 8


def test_r_precision_is_one_for_a_perfect_matcher_and_low_for_a_blind_one():
    from ganforge.metrics.text2image import CaptionPool, ImageTextMatcher, r_precision

    matcher = ImageTextMatcher((1, 8, 8), 4)
    # images and texts embed to one-hot class vectors: the matching caption always ranks first
    matcher.embed_images = lambda x: F.one_hot(x.flatten(1)[:, 0].round().long(), 4).float()  # type: ignore
    matcher.embed_texts = lambda t: t  # type: ignore[assignment]
    labels = torch.tensor([0, 1, 2, 3])
    images = labels.float()[:, None, None, None].expand(4, 1, 8, 8)
    pool = CaptionPool(torch.eye(4).repeat(5, 1), torch.arange(4).repeat(5), torch.full((20,), -1))
    assert r_precision(matcher, images, torch.eye(4), labels, torch.full((4,), -1), pool) == 1.0
    blind = torch.zeros(4, 1, 8, 8)  # every image looks like class 0: only class 0's caption can win
    assert r_precision(matcher, blind, torch.eye(4), labels, torch.full((4,), -1), pool) == 0.25


def test_keyword_encoder_is_the_label_conditional_upper_bound(digits):
    enc = KeywordEncoder(FASHION_VOCABULARY)
    v = enc.encode(["a pair of dark trousers", "a bright running shoe"])
    assert v.shape == (2, 12) and v[0, 1] == 1 and v[0, 10] == 1 and v[1, 7] == 1 and v[1, 11] == 1
