"""Figures built from result objects (matplotlib, headless)."""
