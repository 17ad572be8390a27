"""Seeing a search: plotly figures and the self-contained HTML report (reads :mod:`vqtune.study`)."""

from vqtune.report._html import write_report

__all__ = ["write_report"]
