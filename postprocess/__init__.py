"""Post-processing: small named filters over a backend's candidates."""
