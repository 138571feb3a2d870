"""Talking to a real kernel from a test: run a cell, get its reply and everything it printed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class CellResult:
    status: str  # ok or error
    text: str  # stream output and text/plain of results and displays, in order
    ename: str = ""
    evalue: str = ""
    traceback: tuple[str, ...] = ()


def run_cell(kc: Any, code: str, timeout: float = 120.0) -> CellResult:
    """Execute ``code`` on the kernel client ``kc``; wait (bounded) until the kernel is idle."""
    # stop_on_error=False: after a failed cell the kernel would otherwise answer a request sent
    # right after it "aborted", without running it.
    msg_id = kc.execute(code, stop_on_error=False)
    deadline = time.monotonic() + timeout
    text: list[str] = []
    error: dict[str, Any] = {}
    while True:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text.append(content["text"])
        elif kind in ("execute_result", "display_data"):
            text.append(content["data"].get("text/plain", "") + "\n")
        elif kind == "error":
            error = content
        elif kind == "status" and content["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
    content = {**reply["content"], **error}  # a UsageError is only in the reply, not on iopub
    return CellResult(
        content["status"],
        "".join(text),
        content.get("ename", ""),
        content.get("evalue", ""),
        tuple(content.get("traceback", ())),
    )


def ok(kc: Any, code: str, timeout: float = 120.0) -> str:
    """Run a cell that must succeed; its printed text."""
    result = run_cell(kc, code, timeout)
    assert result.status == "ok", f"{result.ename}: {result.evalue}\n{result.text}"
    return result.text
