"""Data contracts: rules on a snapshot name (``%expect``), checked by pandera."""
