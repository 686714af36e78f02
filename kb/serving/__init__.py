"""Answering requests: the live index, suggestions, locale fallback."""
