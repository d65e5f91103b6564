"""Monitoring: the stats stream every part of ganforge reports into."""

from ganforge.monitor.stats import Collector, read_stats, report

__all__ = ["Collector", "report", "read_stats"]
