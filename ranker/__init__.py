"""Snippet scoring, token-budget packing, prompt templates and candidate post-processing."""
