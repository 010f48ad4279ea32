"""Pure functions over a predictions table: metrics, statistics, sanity rules."""
