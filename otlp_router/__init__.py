"""otlp-router: an OTLP receiver and router for LLM traces."""

__version__ = "0.1.0"
