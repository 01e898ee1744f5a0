"""The doctor in a data-parallel run: rank detection, gathering findings to rank 0, merging them across ranks.

Under ``torchrun`` (or any ``torch.distributed`` launch) every rank watches its own replica: its losses, its
activations, the gradients it sees. Each rank's detectors run locally; at the end the findings travel to rank 0,
which merges them, prints them and writes ``doctor.json`` once.

Merging (:func:`merge_rank_findings`). Findings with the same ``(code, where)`` on several ranks become one, with
``ranks`` the union, the earliest step, the worst severity, and the evidence of the rank that saw it first plus
``first_rank`` and ``first_step_by_rank``. A finding on some ranks only says so (``only_on_ranks``): a rank that
diverges alone points at its data shard or its own state. A non-finite loss on one rank spreads to every replica
through the gradient all-reduce one step later; ``first_rank`` names where it began.

Transport (:func:`gather_payloads`): the key-value store the process group already has (``TCPStore`` under
``torchrun``), not a collective. Every rank other than 0 writes its findings under a key and returns at once; rank
0 polls for the keys until they are all there or ``timeout`` seconds have passed, then warns about the ranks that
did not report. No rank ever waits for another rank to *call* something, so a rank that raised, hangs in a
collective or was killed cannot deadlock the report: rank 0 waits at most ``timeout`` (default
:data:`GATHER_TIMEOUT`, or the ``DEEPBASICS_DOCTOR_TIMEOUT`` environment variable). A ``gather_object`` at the end
would block forever on a rank that never arrives, and could pair up with a collective still in flight on another
rank. The store is captured while the process group is alive (:func:`default_store`), so a script that calls
``destroy_process_group()`` before the doctor reports still reports. When no store is reachable but a process
group is, ``torch.distributed.gather_object`` is the fallback (blocking, as collectives are). Keys are numbered
per process, so every rank must gather the same number of times in the same order (``watch``: once per session
finalized with new steps; the script runner: once more for each rank's outcome), unless a ``tag`` is given.

Works the same with gloo (CPU) and NCCL (GPU): nothing here touches a device.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from .._checks import check_positive, fail
from .findings import Finding, Severity

__all__ = [
    "GATHER_TIMEOUT",
    "RankInfo",
    "default_store",
    "gather_findings",
    "gather_payloads",
    "merge_rank_findings",
    "rank_info",
    "signal_done",
    "tag_ranks",
    "unwrap_model",
    "wait_done",
]

#: Seconds rank 0 waits for the other ranks' findings. Long enough for ranks that finish a few seconds apart (a last
#: evaluation, a checkpoint), short enough that a crashed rank delays the report by a minute, not the 30 minutes of
#: the default process-group timeout.
GATHER_TIMEOUT = 60.0
#: Seconds between two looks at the store while rank 0 waits.
POLL_INTERVAL = 0.05
_KEY_PREFIX = "deepbasics/doctor"
_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}
_gather_count = itertools.count()  # one key per gather; every rank gathers in the same order
_remembered_store: Any = None  # see default_store


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits in a distributed run.

    Attributes:
        rank: global rank (0 when not distributed). world_size: number of ranks (1 when not distributed).
        local_rank: rank on this machine (``LOCAL_RANK``; picks the GPU). initialized: a default process group is up.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized: bool = False

    @property
    def distributed(self) -> bool:
        """More than one rank."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes the report."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise fail(ValueError, f"environment variable {name}", "an integer", repr(raw),
                   "Launch with torchrun, or unset it.") from None  # fmt: skip


def rank_info() -> RankInfo:
    """This process's :class:`RankInfo`: from the default process group when it is initialized, else from the
    ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` variables ``torchrun`` sets (before ``init_process_group``), else a
    single process."""
    import torch.distributed as dist

    local = _env_int("LOCAL_RANK", 0)
    if dist.is_available() and dist.is_initialized():
        return RankInfo(dist.get_rank(), dist.get_world_size(), local, True)
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise fail(ValueError, "RANK/WORLD_SIZE", "0 <= RANK < WORLD_SIZE", f"RANK={rank}, WORLD_SIZE={world}",
                   "Launch with torchrun, or unset them.")  # fmt: skip
    return RankInfo(rank, world, local, False)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside ``DistributedDataParallel`` / ``DataParallel`` wrappers (repeatedly), so that layer names
    are those of the user's model (``0.weight``, not ``module.0.weight``). Other modules are returned as they are."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    while isinstance(model, (DistributedDataParallel, DataParallel)):
        model = model.module
    return model


def tag_ranks(findings: Iterable[Finding], rank: int) -> list[Finding]:
    """Findings with ``ranks=(rank,)`` where they carry no rank yet."""
    return [f if f.ranks else dataclasses.replace(f, ranks=(rank,)) for f in findings]


def default_store() -> Any:
    """The default process group's key-value store (remembered), or None.

    The store seen while a process group was up is remembered in this process, which keeps it alive (and, on the
    rank that hosts a ``TCPStore``, its server) after the script calls ``destroy_process_group()``: call this once
    while the group is up (``watch`` does so when it attaches). Without a process group and nothing remembered, a
    client of the ``torchrun`` agent's store (``MASTER_ADDR``/``MASTER_PORT`` with ``TORCHELASTIC_USE_AGENT_STORE``),
    else None.
    """
    global _remembered_store
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:  # private but stable since torch 1.x; the public API has no accessor
            _remembered_store = dist.distributed_c10d._get_default_store()
        except (AttributeError, RuntimeError):
            return None
        return _remembered_store
    if _remembered_store is not None:
        return _remembered_store
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if addr and port and os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true":
        from datetime import timedelta

        try:
            return dist.TCPStore(addr, int(port), is_master=False, timeout=timedelta(seconds=10))
        except (RuntimeError, ValueError, OSError):
            return None
    return None


def _timeout(timeout: float | None) -> float:
    if timeout is not None:
        return check_positive(timeout, "timeout")
    raw = os.environ.get("DEEPBASICS_DOCTOR_TIMEOUT")
    if raw:
        try:
            return check_positive(float(raw), "DEEPBASICS_DOCTOR_TIMEOUT")
        except ValueError:
            raise fail(ValueError, "DEEPBASICS_DOCTOR_TIMEOUT", "a positive number of seconds", repr(raw),
                       "Set it to e.g. 120, or unset it.") from None  # fmt: skip
    return GATHER_TIMEOUT


def _key(tag: str | None) -> str:
    run = os.environ.get("TORCHELASTIC_RUN_ID", "run")
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return f"{_KEY_PREFIX}/{run}/{restart}/{tag if tag is not None else next(_gather_count)}"


def gather_payloads(
    payload: Mapping[str, Any],
    *,
    tag: str | None = None,
    timeout: float | None = None,
    store: Any = None,
    info: RankInfo | None = None,
) -> dict[int, dict[str, Any]] | None:
    """Send every rank's JSON-ready ``payload`` to rank 0 (see the module docstring for why through the store).

    Args:
        payload: plain data (``json.dumps`` must accept it; inf/nan allowed).
        tag: the key of this gather, the same on every rank (default: a per-process counter, which matches across
            ranks as long as every rank gathers the same number of times).
        timeout: seconds rank 0 waits for the others (default :data:`GATHER_TIMEOUT` or ``DEEPBASICS_DOCTOR_TIMEOUT``).
        store: a ``torch.distributed.Store`` (default :func:`default_store`).
        info: this process's :class:`RankInfo` (default :func:`rank_info`).

    Returns:
        On rank 0, ``{rank: payload}`` for every rank that reported in time (a warning names the missing ones); on
        the other ranks None. A single process gets ``{0: payload}``.
    """
    info = info if info is not None else rank_info()
    wait = _timeout(timeout)
    data = json.dumps(dict(payload))
    if not info.distributed:
        return {info.rank: json.loads(data)}
    if store is None:
        store = default_store()
    if store is None:
        if info.initialized:
            return _gather_collective(json.loads(data), info)
        warnings.warn(
            f"deepbasics doctor: rank {info.rank} of {info.world_size} has no process group or store to send its "
            "findings through; each rank keeps its own.",
            stacklevel=2,
        )
        return {0: json.loads(data)} if info.is_main else None
    key = _key(tag)
    if not info.is_main:
        try:
            store.set(f"{key}/{info.rank}", data)
        except Exception as error:  # the store's host (rank 0 or the agent) is gone: nobody is left to report to
            warnings.warn(f"deepbasics doctor: rank {info.rank} could not send its findings: {error}", stacklevel=2)
        return None
    out: dict[int, dict[str, Any]] = {0: json.loads(data)}
    pending = set(range(1, info.world_size))
    deadline = time.monotonic() + wait
    while pending:
        for rank in sorted(pending):
            if store.check([f"{key}/{rank}"]):
                out[rank] = json.loads(store.get(f"{key}/{rank}"))
                pending.discard(rank)
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(POLL_INTERVAL)
    if pending:
        warnings.warn(
            f"deepbasics doctor: rank(s) {sorted(pending)} did not report within {wait:g} s (crashed, killed or "
            "still training); the report covers ranks " + ", ".join(map(str, sorted(out))) + ". Raise the wait "
            "with DEEPBASICS_DOCTOR_TIMEOUT.",
            stacklevel=2,
        )
    return out


def signal_done(tag: str, *, store: Any = None, info: RankInfo | None = None) -> None:
    """Rank 0: say that the report for ``tag`` is written (see :func:`wait_done`). No-op elsewhere or alone."""
    info = info if info is not None else rank_info()
    store = store if store is not None else (default_store() if info.distributed else None)
    if info.is_main and store is not None:
        try:
            store.set(_key(f"{tag}/done"), "1")
        except Exception as error:  # nobody may be left to read it; the report is written anyway
            warnings.warn(f"deepbasics doctor: could not signal the other ranks: {error}", stacklevel=2)


def wait_done(tag: str, *, timeout: float | None = None, store: Any = None, info: RankInfo | None = None) -> bool:
    """A rank other than 0: wait (at most ``timeout`` s) until rank 0 has written the report for ``tag``.

    A rank that is about to exit with an error calls this first: ``torchrun`` stops every rank as soon as one fails,
    which would cut rank 0 off before it reports. Returns True when rank 0 reported (True at once on rank 0 or in a
    single process), False after the timeout or without a store: then this rank should report for itself.
    """
    info = info if info is not None else rank_info()
    if not info.distributed or info.is_main:
        return True
    store = store if store is not None else default_store()
    if store is None:
        return False
    key, deadline = _key(f"{tag}/done"), time.monotonic() + _timeout(timeout)
    try:
        while not store.check([key]):
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_INTERVAL)
    except Exception:  # the store's host is gone: rank 0 has exited, without saying it reported
        return False
    return True


def _gather_collective(payload: dict[str, Any], info: RankInfo) -> dict[int, dict[str, Any]] | None:
    """Fallback without a store: ``gather_object`` to rank 0 on the default group (blocks until every rank calls)."""
    import torch.distributed as dist

    received: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(payload, received, dst=0)
    if received is None:
        return None
    return {rank: item for rank, item in enumerate(received) if item is not None}


def merge_rank_findings(per_rank: Mapping[int, Iterable[Finding]]) -> list[Finding]:
    """One finding per ``(code, where)`` across ranks (module docstring), in order of first appearance.

    Args:
        per_rank: ``{rank: findings of that rank}``; the keys are the ranks that reported.
    """
    reported = sorted(per_rank)
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[int, Finding]]] = {}
    for rank in reported:
        for f in per_rank[rank]:
            groups.setdefault((f.code, f.where), []).append((rank, f))
    return [_merge_group(items, reported) for items in groups.values()]


def _merge_group(items: Sequence[tuple[int, Finding]], reported: Sequence[int]) -> Finding:
    def when(item: tuple[int, Finding]) -> tuple[float, int]:
        return (math.inf if item[1].step is None else item[1].step, item[0])

    items = sorted(items, key=when)
    first_rank, first = items[0]
    ranks = sorted({r for rank, f in items for r in (f.ranks or (rank,))})
    severity = max((f.severity for _, f in items), key=_SEVERITY_RANK.__getitem__)
    if len(reported) < 2:
        return dataclasses.replace(first, severity=severity, ranks=tuple(ranks))
    evidence = dict(first.evidence)
    evidence["first_rank"] = first_rank
    steps = {str(rank): f.step for rank, f in items}
    if any(s is not None for s in steps.values()):
        evidence["first_step_by_rank"] = steps
    detail = ""
    missing = [r for r in reported if r not in ranks]
    if missing:
        evidence["only_on_ranks"] = ranks
        detail = (
            f" Seen on rank{'s' if len(ranks) > 1 else ''} {_names(ranks)} only, of {len(reported)} ranks: a rank that "
            "goes wrong alone points at its own data shard or state."
        )
    elif len({f.step for _, f in items}) > 1:
        later = ", ".join(f"rank {r} at step {f.step}" for r, f in items[1:])
        detail = f" First on rank {first_rank} at step {first.step}, then {later}"
        detail += (
            ": the gradient all-reduce carries one rank's inf/nan to every replica."
            if first.code == "nonfinite"
            else "."
        )
    return dataclasses.replace(
        first, severity=severity, evidence=evidence, explanation=first.explanation + detail, ranks=tuple(ranks)
    )


def _names(ranks: Sequence[int]) -> str:
    return ", ".join(map(str, ranks))


def gather_findings(
    findings: Iterable[Finding],
    *,
    tag: str | None = None,
    timeout: float | None = None,
    store: Any = None,
    info: RankInfo | None = None,
) -> list[Finding]:
    """This rank's findings, merged across ranks on rank 0 (:func:`gather_payloads` + :func:`merge_rank_findings`).

    Returns on rank 0 the merged findings of every rank that reported in time; on the other ranks their own
    findings tagged with their rank (they do not wait for rank 0). A single process gets its findings unchanged.
    """
    info = info if info is not None else rank_info()
    findings = list(findings)
    if not info.distributed:
        return findings
    local = tag_ranks(findings, info.rank)
    gathered = gather_payloads(
        {"findings": [f.to_dict() for f in local]}, tag=tag, timeout=timeout, store=store, info=info
    )
    if gathered is None:
        return local
    return merge_rank_findings({r: [Finding.from_dict(d) for d in p["findings"]] for r, p in gathered.items()})
