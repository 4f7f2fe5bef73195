"""The LSP surface: handlers, settings, the custom protocol and the completion session."""
