"""Seeing a search: the trials table (pandas), plotly figures, and the self-contained HTML report."""

from vqtune.report._html import write_report
from vqtune.report._table import trials_frame

__all__ = ["trials_frame", "write_report"]
