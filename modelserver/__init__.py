"""``ghostcomplete serve-model``: one backend behind an OpenAI-compatible HTTP API."""
