"""The lookup engine: copies continuations from the context, with no weights at all."""
