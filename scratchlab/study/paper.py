"""Hold a study's findings against the published claims: one entry per claim with its result, the 95%
interval (AP points) of the difference that decides it and the arms it compares. Only reads the
findings (``Finding.as_dict()`` records); never invents a number.

A claim is judged on bbox AP, with the paper's ImageNet-style start where such findings exist
(classification pre-training, or published weights: ``init: weights``) and direct pre-training otherwise. Several findings (data regimes) give one result:
``reproduced`` / ``not reproduced`` (``consistent`` / ``inconsistent`` when training noise is not
included) when all agree, ``inconclusive`` when none decides, else ``mixed``.
The interval and arms shown are those of the first finding (the regime with the most data).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLAIMS", "paper_check"]

CLAIMS = {
    "early": "pre-training speeds up early convergence (He et al. 2019)",
    "catch_up": "random init catches up with pre-training given a longer schedule (He et al. 2019)",
    "localisation": "random init holds up better at AP75 than at AP50 (He et al. 2019)",
    "normalisation": "scratch training needs GN/SyncBN: BN on small batches falls behind (He et al. 2019)",
    "direct_vs_classify": "direct detection pre-training beats classification pre-training at lower cost "
    "(Li et al. 2021)",
}


def _rows(findings: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    rows = [r for r in findings.get(kind, []) if r["task"] == "bbox"]
    classify = [
        r for r in rows if {"classify", "weights"} & {r["a_group"]["init"], (r["b_group"] or {}).get("init")}
    ]
    return classify if kind != "normalisation" and classify else rows


def _result(outcomes: list[str]) -> str:
    if not outcomes:
        return "not tested"
    if len(set(outcomes)) == 1:
        return outcomes[0]
    return "mixed" if set(outcomes) - {"inconclusive"} else "inconclusive"


def _noise(row: dict[str, Any]) -> dict[str, Any]:
    """The training noise the deciding finding's interval includes (none when there is no finding)."""
    noise = row.get("noise") or {}
    return {"kind": noise.get("kind", "none"), "seeds": noise.get("seeds", 0), "sigma": noise.get("sigma")}


def paper_check(findings: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``[{"claim", "result", "interval", "arms", "noise", "adjusted"}]``, one per claim of ``CLAIMS``, in
    that order: ``noise`` = {kind: seeds | calibrated | none, seeds, sigma} of the deciding finding, and
    ``adjusted`` the multiplicity adjustment of the outcomes (Holm, across the study's claims)."""
    out = []
    for kind, claim in CLAIMS.items():
        rows = _rows(findings, kind)
        first = rows[0] if rows else {}
        out.append(
            {
                "claim": claim,
                "result": _result([r["outcome"] for r in rows]),
                "interval": first.get("interval"),
                "arms": first.get("arms", []),
                "noise": _noise(first),
                "adjusted": "holm",
            }
        )
    return out
