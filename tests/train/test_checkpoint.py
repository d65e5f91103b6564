import pytest
import torch

from ganforge.errors import CheckpointError
from ganforge.train.checkpoint import (
    best_checkpoint,
    list_checkpoints,
    load_state,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
    verify_checkpoint,
)


def _save(root, step, score=None):
    net = torch.nn.Linear(3, 2)
    state = {"step": step, "rng": torch.get_rng_state(), "nested": {"lr": 0.1}}
    return net, save_checkpoint(root, step, {"generator": net.state_dict()}, state, score=score)


def test_round_trip(tmp_path):
    net, path = _save(tmp_path, 100)
    assert path.name == "step_000100"
    meta = verify_checkpoint(path)
    assert meta["step"] == 100
    weights = load_weights(path, "generator")
    for k, v in net.state_dict().items():
        assert torch.equal(weights[k], v)
    state = load_state(path)
    assert state["nested"]["lr"] == 0.1 and torch.equal(state["rng"], torch.get_rng_state())
    assert load_weights(path, "missing") is None
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())


def test_truncated_file_is_reported(tmp_path):
    _, path = _save(tmp_path, 5)
    f = path / "generator.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        verify_checkpoint(path)


def test_missing_meta_is_incomplete(tmp_path):
    _, path = _save(tmp_path, 5)
    (path / "meta.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        verify_checkpoint(path)


def test_state_loading_refuses_code(tmp_path):
    _, path = _save(tmp_path, 5)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, path / "training_state.pt")
    with pytest.raises(CheckpointError):
        load_state(path)


def test_prune_keeps_last_and_best(tmp_path):
    scores = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.7, 5: 0.6}
    for step, score in scores.items():
        _save(tmp_path, step, score)
    prune_checkpoints(tmp_path, keep_last=2)
    assert [c.step for c in list_checkpoints(tmp_path)] == [2, 4, 5]
    assert best_checkpoint(tmp_path).step == 2


def test_resave_same_step(tmp_path):
    _save(tmp_path, 7)
    _, path = _save(tmp_path, 7)
    verify_checkpoint(path)
    assert [c.step for c in list_checkpoints(tmp_path)] == [7]
