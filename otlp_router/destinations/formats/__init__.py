"""Encoders from spans to stored objects: pure functions, no I/O."""
