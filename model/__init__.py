"""Tools for models: train and export the built-in model, measure an engine, export the embedder."""
