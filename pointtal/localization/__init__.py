"""Scores -> segments and single frames (numpy only)."""
