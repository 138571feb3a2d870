"""Results of ``%%distributed`` and ``%distributed status`` (HTML: display/distributed.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .stats import RankStats


@dataclass
class DistributedResult:
    """A finished (or, for Slurm, submitted) job; ``values`` are the names pulled from rank 0."""

    job_id: str
    state: str
    world_size: int
    nnodes: int
    backend: str
    executor: str
    job_dir: Path
    values: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    scheduler_id: str | None = None
    restarts: list[str] = field(default_factory=list)  # why torchrun restarted, one line each

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __repr__(self) -> str:
        return (
            f"DistributedResult(state={self.state!r}, world_size={self.world_size}, "
            f"nnodes={self.nnodes}, backend={self.backend!r}, executor={self.executor!r}, "
            f"pulled={sorted(self.values)!r})"
        )


@dataclass(frozen=True)
class JobRow:
    job_id: str
    state: str
    world_size: int
    backend: str
    executor: str
    live_processes: int
    restarts: int = 0
    ranks: tuple[RankStats, ...] = ()  # per-rank step time and memory (stats/rank-N.json)


@dataclass
class DistributedStatus:
    """The jobs under ``<home>/jobs/``, newest first; ``cancelled`` lists jobs just stopped."""

    jobs: list[JobRow]
    cancelled: list[str] = field(default_factory=list)

    @property
    def running(self) -> list[JobRow]:
        return [j for j in self.jobs if j.live_processes or j.state in ("running", "submitted")]

    def __repr__(self) -> str:
        lines = [f"DistributedStatus({len(self.jobs)} jobs, {len(self.running)} running)"]
        if self.cancelled:
            lines.append(f"  cancelled: {', '.join(self.cancelled)}")
        for j in self.jobs:
            restarts = f" restarts={j.restarts}" if j.restarts else ""
            lines.append(
                f"  {j.job_id}  {j.state:<9} world_size={j.world_size} backend={j.backend} "
                f"executor={j.executor} live_processes={j.live_processes}{restarts}"
            )
            lines.extend(f"    {r.summary}" for r in j.ranks)
        return "\n".join(lines)
