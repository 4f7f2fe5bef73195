"""The built-in model's files (package data), written by ``python -m ghostcomplete.model.train``."""
