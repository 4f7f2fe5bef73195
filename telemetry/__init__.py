"""Acceptance telemetry: what was offered, shown, accepted; kept on this machine only."""
