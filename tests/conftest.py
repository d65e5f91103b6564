"""Suite-wide settings. libgomp's default active spin-wait makes torch's worker threads burn the cores
they wait on; on a busy 2-core machine that made multi-threaded steps several times slower than one
thread. The CLI sets a passive wait policy before importing torch (``ganforge.cli.main``); so do the
tests, here, before any test module imports torch."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after the wait policy is set)

# The suite's models are tiny: one thread is as fast as two on an idle machine and many times faster on a
# busy one. Tests of thread settings set their own.
torch.set_num_threads(1)
