"""Latency and acceptance benchmarks, driving the real server over LSP (``ghostcomplete bench``)."""
