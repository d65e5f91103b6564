"""ganforge: generative adversarial networks that train well by default and say why when they don't.

The top-level package stays light (no torch import) so that the CLI can set thread and
wait-policy environment variables before torch loads its OpenMP runtime.
"""

from __future__ import annotations

__version__ = "0.1.0"
