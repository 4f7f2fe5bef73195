"""The LSP surface only.

Thin handlers (snapshot, complete, items, telemetry), the wire, the custom protocol, the CLI.
"""
