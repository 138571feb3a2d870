"""Content-addressed, deduplicated, verified data snapshots (``%snapshot``)."""
