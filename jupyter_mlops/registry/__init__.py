"""Model registry and promotion gates (``%register``, ``%promote``, ``%gate``).

``models`` logs and registers model versions linked to their run and input snapshots;
``checks`` parses ``--require`` expressions safely; ``gates`` runs every check and moves an
alias only when all pass; ``decisions`` records each verdict on the version and as JSON/JUnit.
"""
