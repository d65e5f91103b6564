"""``python -m ganforge``: the same as the ``ganforge`` console script.

This is also what ``torchrun --nproc-per-node K -m ganforge train ...`` runs in each process
(see ganforge.train.distributed); only ``train`` runs distributed, so other commands refuse a
multi-process launch instead of running K copies that write the same files.
"""

import os
import sys

from ganforge.cli import main

if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and (len(sys.argv) < 2 or sys.argv[1] != "train"):
    if os.environ.get("RANK", "0") == "0":
        print("ganforge: error: only `ganforge train` runs under torchrun (WORLD_SIZE > 1); run other commands "
              "with plain python -m ganforge", file=sys.stderr)
    raise SystemExit(2)

raise SystemExit(main())
