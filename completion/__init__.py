"""The engine of one completion request, without pygls.

Pipeline, session (debounce, caches, supersede), settings.
"""
