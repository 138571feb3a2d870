"""The one way tests build a notebook file: one code cell per source, the python3 kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook(*cells: str, path: Path | None = None) -> nbformat.NotebookNode:
    """A v4 notebook of code cells with the python3 kernelspec; written to ``path`` if given."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    if path is not None:
        nbformat.write(nb, path)
    return nb


def add_cells(path: Path, *cells: str) -> nbformat.NotebookNode:
    """Append code cells to the notebook file at ``path``."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in cells)
    nbformat.write(nb, path)
    return nb
