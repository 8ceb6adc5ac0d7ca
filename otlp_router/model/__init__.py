"""The data model: OTLP signals, the batches that carry them, and their codecs."""
