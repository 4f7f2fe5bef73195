"""Pure functions over document snapshots: cursor, prefix/suffix, recent files, syntax facts."""
