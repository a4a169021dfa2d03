"""Semantic state: the backend protocol, the in-memory backend, loading and committing."""
