"""Write-ups built from results: a self-contained HTML page with figures, tables and provenance."""

from interplab.report.html import Report, Section

__all__ = ["Report", "Section"]
