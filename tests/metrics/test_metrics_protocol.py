import json

from ganforge.metrics.protocol import Protocol, Score, append_scores, format_table, read_scores


def _protocol(**kw):
    base = dict(extractor="mnist_cnn", extractor_hash="ab" * 32, n_real=100, n_fake=100, reference="mnist:test",
                resize="none", seed=0)
    base.update(kw)
    return Protocol(**base)


def test_round_trip_and_stamp(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_scores(path, [Score("fd_mnist_cnn", 1.5, _protocol(), checkpoint="checkpoints/step_000010", step=10)])
    append_scores(path, [Score("kid_mnist_cnn", 0.01, _protocol(), extra={"std": 0.001})])
    records = read_scores(path)
    assert [r["metric"] for r in records] == ["fd_mnist_cnn", "kid_mnist_cnn"]
    stamp = records[0]["protocol"]
    for key in ("extractor", "extractor_hash", "n_real", "n_fake", "reference", "resize", "seed", "ganforge_version"):
        assert key in stamp
    assert records[0]["step"] == 10 and records[1]["extra"]["std"] == 0.001
    with open(path, "a") as f:
        f.write('{"metric": "torn')
    assert len(read_scores(path)) == 2
    json.loads(path.read_text().splitlines()[0])


def test_table_separates_protocols():
    same = format_table([Score("fd_mnist_cnn", 1.0, _protocol()), Score("kid_mnist_cnn", 2.0, _protocol())])
    assert "protocol 1 of" not in same
    mixed = format_table([Score("fd_mnist_cnn", 1.0, _protocol()), Score("fd_mnist_cnn", 3.0, _protocol(n_fake=50))])
    assert "protocol 1 of 2" in mixed and "protocol 2 of 2" in mixed
    assert "comparable only with each other" in mixed


def test_extractor_internal_resize_is_stamped():
    """An extractor that resizes inside (InceptionV3) must say so in the protocol, not 'none'."""
    import numpy as np
    import torch

    from ganforge.metrics.evaluate import evaluate

    class Resizing:
        name, weights_hash, input_shape = "fake_inception", "", None

        def features(self, x):
            return x.flatten(1).numpy().astype(np.float64)

        def protocol(self):
            return {"resize": "bilinear to 299x299"}

    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(50, 1, 2, 2, generator=g), torch.rand(50, 1, 2, 2, generator=g)
    (score,) = evaluate(fake, real, dataset="x", reference="x:test", metrics=["fd"], extractor=(Resizing(), None))
    assert score.protocol.resize == "bilinear to 299x299"
