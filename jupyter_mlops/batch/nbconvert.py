"""Make ``jupyter nbconvert --execute`` write the executed notebook when a cell fails.

Stock nbconvert lets :class:`~nbclient.exceptions.CellExecutionError` escape the exporter, so the
process exits 1 and writes nothing (jupyter/nbconvert#626): a CI run loses the very notebook that
shows why a gate failed. Two small subclasses, wired in by the config file the wheel installs as
``<sys.prefix>/etc/jupyter/jupyter_nbconvert_config.json``, change only the failure path:

- :class:`KeepPartialExecutePreprocessor` replaces ``ExecutePreprocessor`` in
  ``Exporter.default_preprocessors`` (same list, same order; set on the base class so that
  ``--to notebook``, ``--to html`` and every other exporter use it). When a cell fails it stops
  (later cells are not run; the kernel shuts down as usual), keeps the outputs so far, the failing
  cell's error included, and puts the original exception in the resources instead of raising it.
- :class:`FailAfterWriteFilesWriter` is ``NbConvertApp.writer_class``: it writes like
  ``FilesWriter`` and then re-raises that exception, so the exit status and the message are the
  stock ones.

Why these hooks: nbconvert's app has no error hook and catches only ``ConversionException``, the
writer never sees an exception raised during export, and nbclient's ``on_cell_error`` hook cannot
be set from a config file (it takes a callable) nor stop the exception. The exception can only be
caught where it is raised (the execute preprocessor) and raised again only after the write (the
writer), and both are picked by plain config. Nothing else changes: a successful run,
``--allow-errors`` and ``raises-exception`` cells behave as before; ``--stdout`` or a writer
configured by the user get the stock behaviour too, because the preprocessor defers the error
only when this module's writer is the one that will write.
traitlets applies ``ExecutePreprocessor.*`` and ``FilesWriter.*`` settings (``--execute``,
``--allow-errors``, ``--inplace``, timeouts) to the subclasses too. nbconvert reads no
``jupyter_nbconvert_config.d/`` folders (only jupyter_server does), hence the single file.
"""

from __future__ import annotations

from typing import Any

from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert.preprocessors import ExecutePreprocessor
from nbconvert.writers import FilesWriter

#: Where the preprocessor leaves the failure for the writer.
ERROR_KEY = "jupyter_mlops_execution_error"

#: A cell raised, timed out, or its kernel died: the notebook so far is still worth saving.
CELL_FAILURES = (CellExecutionError, CellTimeoutError, DeadKernelError)


class KeepPartialExecutePreprocessor(ExecutePreprocessor):
    """Execute cells in order; on the first failure stop and keep the partially run notebook."""

    def preprocess(self, nb: Any, resources: Any = None, km: Any = None) -> tuple[Any, Any]:
        if not _writer_raises_deferred_errors(self.config):
            return super().preprocess(nb, resources, km)
        try:
            return super().preprocess(nb, resources, km)
        except CELL_FAILURES as error:
            # preprocess() fills self.nb in place; the kernel was shut down on the way out.
            self.set_widgets_metadata()
            self.resources[ERROR_KEY] = error
            return self.nb, self.resources


class FailAfterWriteFilesWriter(FilesWriter):
    """``FilesWriter`` that, after writing, re-raises a failure the execution deferred."""

    def write(self, output: Any, resources: Any, notebook_name: Any = None, **kw: Any) -> Any:
        written = super().write(output, resources, notebook_name=notebook_name, **kw)
        error = resources.get(ERROR_KEY)
        if error is not None:
            self.log.error("A cell failed; the notebook executed up to it is in %s", written)
            raise error
        return written


def _writer_raises_deferred_errors(config: Any) -> bool:
    # NbConvertApp.writer_class is a dotted name; --stdout or a user's own config replace ours.
    writer = config.NbConvertApp.get("writer_class")
    return bool(writer == f"{__name__}.{FailAfterWriteFilesWriter.__name__}")
