"""DistributedDataParallel through torchrun, on CPU with gloo and 2 processes (loopback only).

The equivalence check uses ``ddp_noise = "global"`` (every rank draws the global batch's z and
keeps its slice) and the MLP family (no BatchNorm), so 2 processes with global batch B must follow
1 process with batch B up to floating-point reduction order; R1 is on, so the double backward
runs under DDP too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganforge.errors import ConfigError
from ganforge.monitor import read_stats
from ganforge.train import RunConfig, train
from ganforge.train import distributed as dist_mod
from ganforge.train.runtime import BatchStream

MLP = {"hidden_g": [32], "hidden_d": [32], "z_dim": 8}
TOML = """model = "mlp"
data = "digits"
batch-size = 32
steps = 6
r1-weight = 0.5
ddp-noise = "global"
sample-every = 3
checkpoint-every = 3
log-every = 2
threads = 1
progress = false
doctor = false
report = false
[model-config]
hidden_g = [32]
hidden_d = [32]
z_dim = 8
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def single_config(**overrides) -> RunConfig:
    base = dict(model="mlp", model_config=dict(MLP), data="digits", batch_size=32, steps=6, r1_weight=0.5,
                sample_every=3, checkpoint_every=3, log_every=2, threads=1, progress=False, doctor=False,
                report=False)
    base.update(overrides)
    return RunConfig(**base)


def weights(run: Path, step: int, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{step:06d}" / f"{name}.safetensors"))


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_close_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()  # plain state dicts: no "module." prefix from DDP
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.fixture(scope="module")
def torchrun_run(tmp_path_factory):
    """One 2-process run through the real CLI: torchrun --nproc-per-node 2 -m ganforge train."""
    root = tmp_path_factory.mktemp("ddp")
    cwd = root / "cwd"  # torchrun's working directory: must stay empty (no rank writes anywhere else)
    cwd.mkdir()
    (root / "run.toml").write_text(TOML)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "-m", "ganforge", "train", "--config", str(root / "run.toml"),
           "--out", str(root / "run")]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, proc


def test_two_processes_match_one_process_on_the_same_global_batch(torchrun_run, tmp_path):
    root, proc = torchrun_run
    assert proc.stdout.count("done: 6 steps") == 1  # rank 0 speaks for the run
    single = tmp_path / "single"
    train(single_config(), single)
    for step in (3, 6):
        for name in ("generator", "discriminator"):
            assert_close_weights(weights(root / "run", step, name), weights(single, step, name))
    # the weights moved: the comparison is not between two untouched initialisations
    g0 = weights(single, 3, "generator")
    assert any(not torch.equal(g0[k], weights(single, 6, "generator")[k]) for k in g0)
    # stats are averaged over the ranks: they describe the global batch, like the single run's
    ddp_stats, one_stats = list(read_stats(root / "run" / "stats.jsonl")), list(read_stats(single / "stats.jsonl"))
    assert [r["step"] for r in ddp_stats] == [r["step"] for r in one_stats] == [2, 4, 6]
    for a, b in zip(ddp_stats, one_stats, strict=True):
        for key in ("Loss/D", "Loss/G", "D/real", "D/fake", "Loss/D/r1"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key


def test_only_rank_zero_wrote_files(torchrun_run, tmp_path):
    root, _ = torchrun_run
    assert not any((root / "cwd").iterdir())
    single = tmp_path / "single"
    train(single_config(), single)
    assert files_under(root / "run") == files_under(single)
    record = (root / "run" / "config.json").read_text()
    assert '"processes": 2' in record


def test_two_process_checkpoint_resumes_in_one_process(torchrun_run, tmp_path):
    root, _ = torchrun_run
    resumed = tmp_path / "resumed"
    shutil.copytree(root / "run", resumed)
    shutil.rmtree(resumed / "checkpoints" / "step_000006")
    result = train(single_config(), resumed, resume="auto")
    assert result.step == 6
    single = tmp_path / "single"
    train(single_config(), single)
    for name in ("generator", "discriminator"):
        assert_close_weights(weights(resumed, 6, name), weights(single, 6, name))


# --- agreement between ranks: a signal on one rank, a stop decided on rank 0 ---------------------------------
AGREEMENT_SCRIPT = """
import os, signal, sys
import torch
from ganforge.train import RunConfig, train
from ganforge.train.gan_step import GANStep
from ganforge.train.trainer import Callback, Interrupted, StopTraining

rank = int(os.environ["RANK"])


def say(text):  # one file per rank and launch: the ranks share stdout, and their lines can interleave
    with open(os.path.join(os.path.dirname(sys.argv[1]), f"rank{rank}-{sys.argv[2]}.txt"), "w") as f:
        f.write(f"rank {rank}: {text}")

plain_call = GANStep.__call__
sent = []

def call(self, batches):  # rank 1 alone receives SIGINT during its 4th step
    if rank == 1 and self.iteration == 3 and not sent:
        sent.append(1)
        os.kill(os.getpid(), signal.SIGINT)
    return plain_call(self, batches)

GANStep.__call__ = call

class StopAt(Callback):  # runs on rank 0 only: its decision must reach rank 1
    def on_log(self, trainer, step, means):
        if step >= 6:
            raise StopTraining(f"enough at {step}")

config = RunConfig(model="mlp", model_config={"hidden_g": [32], "hidden_d": [32], "z_dim": 8}, data="digits",
                   batch_size=32, steps=20, log_every=1, checkpoint_every=50, sample_every=50, threads=1,
                   progress=False, doctor=False, report=False)
if sys.argv[2] == "interrupt":
    try:
        train(config, sys.argv[1])
        say("no interrupt")
    except Interrupted as e:
        say(f"interrupted at {e.step}")
else:
    result = train(config, sys.argv[1], resume="auto", callbacks=[StopAt()])
    say(f"stopped at {result.step}: {result.stopped}")
"""


@pytest.mark.slow
def test_ranks_agree_on_signals_and_stops(tmp_path):
    script = tmp_path / "agreement.py"
    script.write_text(AGREEMENT_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("WORLD_SIZE", None)
    lines = []
    for mode in ("interrupt", "resume"):  # two launches, as a user would: the second resumes the first
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()), str(script), str(tmp_path / "run"), mode]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines += [(tmp_path / f"rank{r}-{mode}.txt").read_text() for r in range(2)]
        if mode == "interrupt":
            assert (tmp_path / "run" / "checkpoints" / "step_000004").is_dir()  # written by rank 0
    assert lines == ["rank 0: interrupted at 4", "rank 1: interrupted at 4",
                     "rank 0: stopped at 6: enough at 6", "rank 1: stopped at 6: enough at 6"]


# --- setup errors ---------------------------------------------------------------------------------------------
def test_backend_that_cannot_initialise_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    with pytest.raises(ConfigError, match="could not initialise torch.distributed .*gloo, rank 0 of 2"):
        dist_mod.setup(single_config(), timeout_s=2)  # rank 1 never comes
    assert not torch.distributed.is_initialized()
    monkeypatch.delenv("MASTER_ADDR")
    with pytest.raises(ConfigError, match="MASTER_ADDR is not set; start distributed runs with torchrun"):
        dist_mod.setup(single_config())
    with pytest.raises(ConfigError, match="global batch and must be divisible by the 2 processes"):
        dist_mod.setup(single_config(batch_size=33))
    with pytest.raises(ConfigError, match="--auto-remedy"):
        dist_mod.setup(single_config(auto_remedy=True))
    with pytest.raises(ConfigError, match="trains in one process"):
        train(RunConfig(model="cyclegan", data="digits", data_b="digits", steps=1), "unused")


def test_single_process_context_and_rank_seeds(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = dist_mod.setup(single_config())
    assert ctx is dist_mod.SINGLE and ctx.is_main and not ctx.enabled
    assert ctx.broadcast_object("x") == "x" and ctx.agree_signal(None) is None
    assert dist_mod.rank_seed(5, 0) == 5  # rank 0 draws what a single process draws
    seeds = {dist_mod.rank_seed(5, r) for r in range(8)} | {dist_mod.rank_seed(6, r) for r in range(8)}
    assert len(seeds) == 16


def test_batch_stream_shards_are_disjoint_slices_of_the_global_batch():
    images = torch.arange(40, dtype=torch.uint8).reshape(40, 1, 1, 1)
    whole = BatchStream(images, None, 8, seed=3, device=torch.device("cpu"))
    parts = [BatchStream(images, None, 8, seed=3, device=torch.device("cpu"), shard=(r, 2)) for r in range(2)]
    for _ in range(7):  # across an epoch boundary (5 batches per epoch)
        x, _ = whole.next()
        torch.testing.assert_close(torch.cat([p.next()[0] for p in parts]), x)
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        BatchStream(images, None, 9, seed=3, device=torch.device("cpu"), shard=(0, 2))


TWICE_SCRIPT = """
import sys
import torch.distributed as td
from ganforge.train import RunConfig, train
import ganforge.train.distributed as gd

base = dict(model="dcgan", model_config={"ngf": 8, "ndf": 8, "z_dim": 16}, data="digits", batch_size=16, steps=2,
            sample_every=2, checkpoint_every=2, log_every=2, progress=False, threads=1, doctor=False)
train(RunConfig(**base), sys.argv[1] + "/first")
group = td.group.WORLD
assert td.is_initialized() and gd._OWN_GROUP == "gloo"  # kept for the next run
train(RunConfig(**base), sys.argv[1] + "/second")
assert td.group.WORLD is group  # reused, not destroyed and formed again
open(f"{sys.argv[1]}/rank{td.get_rank()}.txt", "w").write("ok")
"""


def test_two_runs_in_one_worker_reuse_the_process_group(tmp_path):
    # destroying the group after a run and forming it again for the next one hung 1 time in 4 under torchrun
    script = tmp_path / "twice.py"
    script.write_text(TWICE_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), str(script), str(tmp_path)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)] == ["ok", "ok"]
    assert (tmp_path / "second" / "checkpoints" / "step_000002").is_dir()
