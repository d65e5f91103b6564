"""``python -m ganforge``: the same as the ``ganforge`` console script."""

from ganforge.cli import main

raise SystemExit(main())
