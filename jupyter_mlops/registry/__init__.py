"""Model registry and promotion gates (``%register``, ``%promote``, ``%gate``)."""
