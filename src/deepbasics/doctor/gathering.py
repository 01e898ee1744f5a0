"""A session's part in a data-parallel run: its rank, and its findings gathered to rank 0 at the end.

Every rank watches its own replica and judges it locally. At :meth:`RankGather.gather` (called by
``DoctorSession.finalize``, once per recorded step count) the findings and notes go to rank 0 through the process
group's store (:func:`deepbasics.doctor.distributed.gather_payloads`: no collective, bounded wait), which merges them
per ``(code, where)`` with the ranks they occurred on (:func:`~deepbasics.doctor.distributed.merge_rank_findings`).
Rank 0 then reports every rank's findings; the other ranks return their own at once. A session whose watched block
raised waits at most :data:`RAISING_GATHER_TIMEOUT` seconds: the other ranks may be stuck in a collective waiting
for this one.

Outside a distributed run (one process) everything here is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .distributed import default_store, gather_payloads, merge_rank_findings, rank_info, tag_ranks
from .findings import Finding

__all__ = ["RAISING_GATHER_TIMEOUT", "RankGather"]

#: Seconds rank 0 waits for the other ranks when the watched block raised (see the module docstring).
RAISING_GATHER_TIMEOUT = 10.0


class RankGather:
    """This process's rank and the findings gathered from the others (module docstring)."""

    def __init__(self) -> None:
        self.info = rank_info()
        self.remote: dict[int, list[Finding]] = {}
        self.ranks_reported: list[int] | None = None
        self.timeout: float | None = None
        self._gathered_at: int | None = None

    @property
    def distributed(self) -> bool:
        """More than one rank."""
        return self.info.distributed

    def attach(self) -> None:
        """Read the rank; remember the store now, while the process group is up (a script may destroy it before
        the session finalizes)."""
        self.info = rank_info()
        if self.info.distributed:
            default_store()

    def raised(self) -> None:
        """The watched block raised: wait only :data:`RAISING_GATHER_TIMEOUT` for the other ranks."""
        self.timeout = RAISING_GATHER_TIMEOUT

    def combined(self, findings: Sequence[Finding]) -> list[Finding]:
        """This rank's findings (tagged with its rank in a distributed run), merged with the other ranks' once they
        were gathered (rank 0)."""
        if not self.distributed:
            return list(findings)
        own = tag_ranks(findings, self.info.rank)
        return merge_rank_findings({self.info.rank: own, **self.remote}) if self.remote else own

    def due(self, steps: int) -> bool:
        """Gather now? Once per recorded step count, in a distributed run."""
        return self.distributed and self._gathered_at != steps

    def gather(self, findings: Sequence[Finding], notes: list[str], steps: int) -> list[Finding]:
        """Send this rank's findings and notes to rank 0; there, merge every rank's (``notes`` is extended with the
        other ranks' notes and with the ranks that did not report)."""
        info = self.info
        self._gathered_at = steps
        own = tag_ranks(findings, info.rank)
        payload = {"findings": [f.to_dict() for f in own], "notes": list(notes), "steps": steps}
        gathered = gather_payloads(payload, timeout=self.timeout, info=info)
        if gathered is None:
            return own
        self.remote = {r: [Finding.from_dict(d) for d in p["findings"]] for r, p in gathered.items() if r != info.rank}
        self.ranks_reported = sorted(gathered)
        own_notes = set(payload["notes"])
        for r in self.ranks_reported:
            for note in gathered[r].get("notes", []) if r != info.rank else ():
                if note not in own_notes and f"rank {r}: {note}" not in notes:
                    notes.append(f"rank {r}: {note}")
        missing = sorted(set(range(info.world_size)) - set(gathered))
        if missing:
            notes.append(
                f"rank(s) {missing} did not report within the timeout (crashed, killed or still training): "
                "their findings are missing."
            )
        return self.combined(findings)

    def title(self, title: str) -> str:
        """``title`` with this rank and the ranks whose findings it shows, in a distributed run."""
        if not self.distributed:
            return title
        ranks = ", ".join(map(str, self.ranks_reported or [self.info.rank]))
        return title[:-1] + f"; rank {self.info.rank} of {self.info.world_size}; findings of ranks {ranks})"

    def to_dict(self) -> dict[str, Any] | None:
        """``{"rank", "world_size", "ranks_reported", "missing"}`` in a distributed run, else None."""
        if not self.distributed:
            return None
        reported = self.ranks_reported
        return {
            "rank": self.info.rank,
            "world_size": self.info.world_size,
            "ranks_reported": reported,
            "missing": None if reported is None else sorted(set(range(self.info.world_size)) - set(reported)),
        }
