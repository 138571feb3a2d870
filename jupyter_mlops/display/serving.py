"""HTML forms of serving results: the endpoint card, the status table, bench and export."""

from __future__ import annotations

from html import escape
from typing import Any

from .html import badge, table, titled


def deployment_html(deployment: Any) -> str:
    rows = [
        ("url", deployment.url),
        ("model", f"{deployment.model}@{deployment.alias} (version {deployment.version} now)"),
        ("score", f"POST {deployment.invocations_url}"),
        ("pid", str(deployment.pid)),
        (
            "lifetime",
            "detached: %serve stop " + deployment.name
            if deployment.detached
            else "stops with this kernel",
        ),
        ("inference log", f"mlops.traffic('{deployment.name}') ({deployment.log_sample:.0%})"),
    ]
    if deployment.workers > 1:
        rows.append(("workers", str(deployment.workers)))
    if deployment.enforce_contract:
        rows.append(("contract", deployment.enforce_contract))
    return titled(f"endpoint {deployment.name}", table(("", ""), rows))


def serving_status_html(status: Any) -> str:
    if not status.deployments:
        return titled("endpoints", "none; start one with <code>%serve NAME@ALIAS</code>")
    rows = [
        (badge("ok" if d.alive else "fail"), *row)
        for d, row in zip(status.deployments, status.rows(), strict=True)
    ]
    header = ("", "name", "version", "url", "requests", "errors", "p50 ms", "p95 ms", "p99 ms")
    return titled("endpoints", table(header, [r[:-1] for r in rows], raw_columns=1))


def bench_html(result: Any) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = [
        ("clients", str(result.clients)),
        ("seconds", f"{result.seconds:.1f}"),
        ("requests", str(result.requests)),
        ("errors", str(result.errors)),
        ("throughput", f"{result.throughput:.0f} req/s"),
        (
            "latency p50 / p95 / p99",
            f"{ms(result.p50_ms)} / {ms(result.p95_ms)} / {ms(result.p99_ms)} ms",
        ),
    ]
    if result.versions:
        answered = ", ".join(f"v{v}: {n}" for v, n in sorted(result.versions.items()))
        rows.append(("answered by", answered))
    return titled(f"bench {result.name}", table(("", ""), rows))


def kserve_html(export: Any) -> str:
    body = table(
        ("", ""),
        [
            ("manifest", export.path),
            ("model", f"{export.model} version {export.version}"),
            ("storageUri", export.storage_uri),
            ("apply", f"kubectl apply -f {export.path}"),
        ],
    )
    if export.local_storage:
        body += (
            '<div style="margin-top:4px">the artifacts are on this machine: copy '
            f"<code>{escape(export.storage_uri)}</code> to a bucket the cluster reads "
            "and set storageUri</div>"
        )
    return titled("KServe InferenceService", body)
