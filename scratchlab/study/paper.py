"""Hold a study's findings against the published claims, one line per claim: reproduced, not reproduced,
or not tested by these arms. Only reads ``compute_verdict``'s findings; never invents a number."""

from __future__ import annotations

from typing import Any

__all__ = ["CLAIMS", "paper_check"]

CLAIMS = {
    "early": "pre-training speeds up early convergence (He et al. 2019)",
    "catch_up": "random init catches up with pre-training given a longer schedule (He et al. 2019)",
    "localisation": "random init holds up at least as well at AP75 as at AP50 (He et al. 2019)",
    "normalisation": "scratch training needs GN/SyncBN: BN on small batches falls behind (He et al. 2019)",
    "direct": "direct detection pre-training beats classification pre-training at lower cost (Li et al. 2021)",
}


def _bbox(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("task", "bbox") == "bbox"]


def _verdict(rows: list[dict[str, Any]], holds) -> str | None:
    """'reproduced' when every conclusive row holds, 'not reproduced' when none does, else 'mixed'."""
    rows = [r for r in rows if not r.get("inconclusive")]
    if not rows:
        return None
    ok = [bool(holds(r)) for r in rows]
    return "reproduced" if all(ok) else "not reproduced" if not any(ok) else "mixed"


def paper_check(findings: dict[str, Any]) -> list[dict[str, str]]:
    """``[{"claim", "result"}]`` with result in reproduced / not reproduced / mixed / not tested (bbox AP)."""
    early = [p for r in _bbox(findings.get("early", [])) for p in r.get("points", [])]
    results = {
        "early": _verdict(early, lambda p: p["diff"] > 0),
        "catch_up": _verdict(_bbox(findings.get("catch_up", [])), lambda r: r["caught_up"]),
        "localisation": _verdict(_bbox(findings.get("localisation", [])), lambda r: r["scratch_better_at_AP75"]),
        "normalisation": _verdict(findings.get("normalisation", []), lambda r: r["bad"] or r["diff"] < 0),
        "direct": _verdict(findings.get("direct_vs_classify", []),
                           lambda r: r["diff"] > 0 and r["pixels_ratio"] < 1),
    }
    return [{"claim": CLAIMS[k], "result": v or "not tested"} for k, v in results.items()]
