"""Batch runs of notebooks outside a live session (``jupyter nbconvert --execute``)."""
