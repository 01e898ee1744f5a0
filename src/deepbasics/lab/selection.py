"""``--only``: choosing claims by ID or by prefix.

A token selects the claim IDs equal to it or that start with it followed by a dot, so ``Q3`` selects
``Q3.1.a`` ... ``Q3.3.j`` but not ``Q30.a``, ``Q3.3`` selects ``Q3.3.*``, and ``Q3.3.a`` selects one claim.
Tokens are case-insensitive, may end in ``.*`` (``Q3.*`` is ``Q3``), and arrive comma-separated, repeated,
or both: ``["Q1,Q3.2", "CNN"]``. A token that selects nothing is an error that lists the valid prefixes:
a typo must never silently run nothing (or everything).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .._checks import fail

__all__ = ["parse_only", "prefixes"]


def _tokens(only: str | Iterable[str]) -> list[str]:
    items = [only] if isinstance(only, str) else list(only)
    tokens = []
    for item in items:
        if not isinstance(item, str):
            raise fail(TypeError, "only", "claim IDs or prefixes as strings", repr(item), 'Pass e.g. "Q1,Q3.2".')
        for token in item.split(","):
            token = token.strip()
            if token.endswith(".*"):
                token = token[:-2]
            if token:
                tokens.append(token)
    return tokens


def _matches(token: str, claim_id: str) -> bool:
    token, claim_id = token.lower(), claim_id.lower()
    return claim_id == token or claim_id.startswith(token + ".")


def prefixes(known: Sequence[str]) -> list[str]:
    """Every proper dotted prefix of the known IDs, in their order: ``["Q3.1.a"] -> ["Q3", "Q3.1"]``."""
    seen: dict[str, None] = {}
    for claim_id in known:
        parts = claim_id.split(".")
        for k in range(1, len(parts)):
            seen.setdefault(".".join(parts[:k]), None)
    return list(seen)


def parse_only(only: str | Iterable[str] | None, known: Sequence[str], faq_ids: Iterable[str] = ()) -> list[str] | None:
    """Resolve ``--only`` tokens to the claim IDs they select, in the order of ``known``.

    Args:
        only: ``None`` (select everything: returns ``None``), a string of comma-separated tokens, or an
            iterable of such strings (``--only`` repeated).
        known: the claim IDs that can be selected (those that have an experiment).
        faq_ids: every claim ID of the FAQ; only used to explain that a valid claim has no experiment yet.

    Raises:
        ValueError: a token selects nothing, or no token was given; the message lists the valid prefixes.
    """
    if only is None:
        return None
    tokens = _tokens(only)
    if not tokens:
        raise fail(ValueError, "only", "at least one claim ID or prefix", repr(only), "Pass e.g. --only Q2.")
    selected: set[str] = set()
    unknown = []
    for token in tokens:
        hits = {cid for cid in known if _matches(token, cid)}
        if not hits:
            unknown.append(token)
        selected |= hits
    if unknown:
        faq_ids = list(faq_ids)
        pending = [t for t in unknown if any(_matches(t, cid) for cid in faq_ids)]
        verb = "is" if len(pending) == 1 else "are"
        note = f" ({', '.join(pending)} {verb} in the FAQ but no experiment covers it yet)" if pending else ""
        valid = ", ".join(prefixes(known)) or "none (no experiment is registered)"
        raise ValueError(
            f"only: expected claim IDs or prefixes of registered experiments, got unknown "
            f"{', '.join(repr(t) for t in unknown)}{note}. Valid prefixes: {valid}. "
            "Run `deepbasics lab list` to see every claim ID."
        )
    return [cid for cid in known if cid in selected]
