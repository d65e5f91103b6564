"""Self-contained HTML run report, read from a run directory.

>>> from ganforge.report import write_report
>>> write_report("runs/digits")   # doctest: +SKIP
PosixPath('runs/digits/report.html')
"""

from ganforge.report.html import build_report, write_report

__all__ = ["build_report", "write_report"]
