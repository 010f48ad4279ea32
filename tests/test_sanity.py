"""Sanity protocol: exact boundaries, failures as misclassifications, all-failed subsets."""

from __future__ import annotations

import pandas as pd
import pytest

from artifactbench.analysis.sanity import evaluate_sanity, meets, rule_text
from artifactbench.benches.base import SubsetInfo

AI = SubsetInfo("gen", "ai").rule
HARD = SubsetInfo("gen_hard", "ai", hard=True).rule
REAL = SubsetInfo("real", "real").rule


def _subset(
    model: str, subset: str, label: str, called_ai: int, n: int, failed: int = 0
) -> list[dict]:
    """n tracks: `failed` failures first, then `called_ai` scored at 0.5 (AI), the rest at 0.1."""
    rows = []
    for i in range(n):
        is_failed = i < failed
        prob = None if is_failed else (0.5 if i - failed < called_ai else 0.1)
        rows.append(
            {
                "model": model,
                "track_id": f"{subset}-{i}",
                "bench": "demo",
                "subset": subset,
                "label": label,
                "generator": subset,
                "bench_origin": "test",
                "prob": prob,
                "status": "failed" if is_failed else "scored",
                "stage": "decode" if is_failed else None,
                "error": "bad" if is_failed else None,
                "seconds": 0.0,
            }
        )
    return rows


def _run(rows: list[dict], subsets: dict | None = None, threshold: float = 0.5) -> dict:
    return evaluate_sanity(pd.DataFrame(rows), threshold, subsets)


@pytest.mark.parametrize("n", [10, 20, 30, 70, 100, 110, 1000])
def test_tpr_exactly_090_passes_for_any_n(n: int) -> None:
    k = n * 9 // 10
    assert meets(k, n, AI)
    assert not meets(k - 1, n, AI)


@pytest.mark.parametrize("n", [5, 10, 35, 55, 105])
def test_hard_tpr_exactly_060_passes(n: int) -> None:
    k = n * 3 // 5
    assert meets(k, n, HARD)
    assert not meets(k - 1, n, HARD)


@pytest.mark.parametrize("n", [20, 60, 140, 220, 2000])
def test_fpr_exactly_005_passes(n: int) -> None:
    k = n // 20
    assert meets(k, n, REAL)
    assert not meets(k + 1, n, REAL)


def test_boundaries_through_the_table() -> None:
    rules = {"gen": AI, "gen_hard": HARD, "real": REAL}
    rows = [
        *_subset("at", "gen", "ai", 9, 10),
        *_subset("at", "gen_hard", "ai", 3, 5),
        *_subset("at", "real", "real", 1, 20),
        *_subset("below", "gen", "ai", 8, 10),
        *_subset("below", "gen_hard", "ai", 2, 5),
        *_subset("below", "real", "real", 2, 20),
    ]
    out = _run(rows, rules)
    at, below = out["models"]["at"], out["models"]["below"]
    assert [at["subsets"][s]["pass"] for s in rules] == [True, True, True]
    assert [below["subsets"][s]["pass"] for s in rules] == [False, False, False]
    assert at["subsets"]["gen"]["rate"] == pytest.approx(0.9)
    assert at["subsets"]["gen_hard"]["rule"] == "TPR >= 0.60"
    assert at["subsets"]["real"]["rule"] == "FPR <= 0.05"
    assert (at["summary"], below["summary"]) == ("0/3", "3/3")
    assert out["subset_order"] == ["gen", "gen_hard", "real"]


def test_prob_equal_to_threshold_is_called_ai() -> None:
    out = _run(_subset("m", "gen", "ai", 10, 10), {"gen": AI}, threshold=0.5)
    assert out["models"]["m"]["subsets"]["gen"]["rate"] == 1.0


def test_failed_tracks_count_as_misclassified() -> None:
    rows = [
        # 9 of 10 would be called AI, but one of those is a failure: 8/10.
        *_subset("m", "gen", "ai", 8, 10, failed=1),
        # No scored false positive, one failed real track: 1/20 still passes.
        *_subset("m", "real", "real", 0, 20, failed=1),
        *_subset("m", "real2", "real", 0, 20, failed=2),
    ]
    out = _run(rows, {"gen": AI, "real": REAL, "real2": REAL})
    s = out["models"]["m"]["subsets"]
    assert (s["gen"]["n"], s["gen"]["n_scored"], s["gen"]["n_failed"]) == (10, 9, 1)
    assert s["gen"]["rate"] == pytest.approx(0.8) and not s["gen"]["pass"]
    assert s["real"]["rate"] == pytest.approx(0.05) and s["real"]["pass"]
    assert s["real2"]["rate"] == pytest.approx(0.1) and not s["real2"]["pass"]
    assert "misclassified" in out["note"]


def test_all_failed_subset_is_a_fail_not_skipped() -> None:
    rows = [
        *_subset("m", "gen", "ai", 0, 4, failed=4),
        *_subset("m", "real", "real", 0, 3, failed=3),
        *_subset("m", "ok", "ai", 5, 5),
    ]
    out = _run(rows, {"gen": AI, "real": REAL, "ok": AI})
    m = out["models"]["m"]
    assert m["subsets"]["gen"] == {
        "label": "ai",
        "n": 4,
        "n_scored": 0,
        "n_failed": 4,
        "n_called_ai": 0,
        "rate": 0.0,
        "rule": "TPR >= 0.90",
        "pass": False,
    }
    assert m["subsets"]["real"]["rate"] == 1.0 and not m["subsets"]["real"]["pass"]
    assert m["n_subsets"] == 3 and m["n_fail"] == 2 and m["summary"] == "2/3"


def test_model_missing_a_subset_fails_it() -> None:
    rows = [*_subset("a", "gen", "ai", 10, 10), *_subset("a", "x", "ai", 10, 10)]
    rows += _subset("b", "gen", "ai", 10, 10)
    out = _run(rows, {"gen": AI, "x": AI})
    x = out["models"]["b"]["subsets"]["x"]
    assert x["n"] == 0 and x["rate"] is None and x["pass"] is False
    assert out["models"]["b"]["summary"] == "1/2"


def test_declared_but_absent_subsets_are_listed_not_counted() -> None:
    out = _run(_subset("m", "gen", "ai", 10, 10), {"gen": AI, "never": AI})
    assert out["absent_subsets"] == ["never"]
    assert out["models"]["m"]["summary"] == "0/1"


def test_undeclared_subset_gets_default_rule_flagged() -> None:
    out = _run(_subset("m", "gen", "ai", 7, 10) + _subset("m", "real", "real", 0, 5), None)
    assert out["subsets"]["gen"]["default_rule"] is True
    assert out["subsets"]["gen"]["rule"] == "TPR >= 0.90"
    assert out["subsets"]["real"]["n_tracks"] == 5
    assert out["subset_order"] == ["gen", "real"]


def test_hard_rule_from_metadata_is_used() -> None:
    out = _run(_subset("m", "gen", "ai", 7, 10), {"gen": HARD})
    assert out["models"]["m"]["subsets"]["gen"]["pass"] is True
    assert out["subsets"]["gen"]["default_rule"] is False


def test_inconsistent_labels_are_rejected() -> None:
    mixed = _subset("m", "gen", "ai", 5, 5) + _subset("m", "gen2", "real", 0, 5)
    for row in mixed[5:]:
        row["subset"] = "gen"
        row["track_id"] += "-r"
    with pytest.raises(ValueError, match="mixes labels"):
        _run(mixed, {"gen": AI})
    with pytest.raises(ValueError, match="rule for ai"):
        _run(_subset("m", "real", "real", 0, 5), {"real": AI})


def test_rule_text() -> None:
    assert rule_text(AI) == "TPR >= 0.90"
    assert rule_text(REAL) == "FPR <= 0.05"
    with pytest.raises(ValueError, match="operator"):
        meets(1, 2, {**AI, "op": "=="})
