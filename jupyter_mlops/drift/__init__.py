"""Data drift with Evidently's verdicts from a vectorised engine (``%drift``)."""
