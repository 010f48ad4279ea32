"""Condition matrices (subset x variant, pooled rows and column): every cell of a small table
worked out by hand, the report files that carry them, and a real codec run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artifactbench.analysis.conditions import POOLED, condition_matrices, run_cost_model
from artifactbench.analysis.detection_cost import CostModel
from artifactbench.analysis.metrics import binary_metrics, equal_error_rate
from artifactbench.audio.transforms import Codec
from artifactbench.benches.base import Bench
from artifactbench.detectors.registry import resolve_models
from artifactbench.predictions import read_predictions
from artifactbench.reports import write_reports
from artifactbench.runner import RunOptions, run
from tests.test_reports import PNG_SIGNATURE, write_parquet

ORDER = ["codec:wav", "codec:mp3_128", "codec:aac_128"]
ROWS = ["g1", "g2", "r1", "r2", "all AI", "all real"]
LABELS = {"g1": "ai", "g2": "ai", "r1": "real", "r2": "real"}
F = None  # a failed track
# P(AI) per model, variant and subset (two tracks each); beta has no row of g2 at all.
PROBS: dict[str, dict[str, dict[str, list[float | None]]]] = {
    "alpha": {
        "codec:wav": {"g1": [0.9, 0.8], "g2": [0.7, 0.6], "r1": [0.1, 0.2], "r2": [0.3, 0.4]},
        "codec:mp3_128": {
            "g1": [0.9, 0.8], "g2": [0.45, 0.35], "r1": [0.1, 0.2], "r2": [0.3, 0.4],
        },
        "codec:aac_128": {"g1": [0.9, F], "g2": [0.7, 0.6], "r1": [0.1, F], "r2": [0.3, 0.4]},
    },
    "beta": {
        "codec:wav": {"g1": [0.6, 0.4], "r1": [0.55, 0.2], "r2": [0.3, 0.1]},
        "codec:mp3_128": {"g1": [0.7, 0.8], "r1": [0.2, 0.1], "r2": [0.3, 0.65]},
        "codec:aac_128": {"g1": [0.9, 0.2], "r1": [0.3, 0.1], "r2": [F, F]},
    },
}  # fmt: skip
SUBSETS = {name: {"label": label, "metric": "tpr" if label == "ai" else "fpr",
                  "op": ">=" if label == "ai" else "<=", "bound": 0.9 if label == "ai" else 0.1}
           for name, label in LABELS.items()}  # fmt: skip
EVEN_COSTS = {"p_attack": 0.5, "c_miss": 1.0, "c_fa": 1.0}


def frame() -> pd.DataFrame:
    rows = []
    for model, by_variant in PROBS.items():
        for variant, by_subset in by_variant.items():
            for subset, probs in by_subset.items():
                for i, prob in enumerate(probs):
                    rows.append({
                        "model": model, "track_id": f"{subset}-{i}", "bench": "b",
                        "subset": subset, "label": LABELS[subset], "generator": subset,
                        "bench_origin": "test", "prob": prob,
                        "status": "scored" if prob is not None else "failed",
                        "stage": None if prob is not None else "encode",
                        "error": None if prob is not None else "encode failed",
                        "seconds": 0.1, "note": None, "variant": variant,
                    })  # fmt: skip
    return pd.DataFrame(rows)


def meta(**extra: object) -> dict:
    return {"threshold": 0.5, "seed": 0, "bench": "b", "split": "test", "subsets": SUBSETS,
            "variants": ORDER, "models": {}, **extra}  # fmt: skip


def _approx(matrix: list[list[float | None]]) -> list[list[object]]:
    return [[None if v is None else pytest.approx(v) for v in row] for row in matrix]


@pytest.fixture(scope="module")
def matrices() -> dict:
    return condition_matrices(frame(), 0.5, ORDER, SUBSETS, CostModel(**EVEN_COSTS))


def test_layout_rows_then_pooled_columns_in_run_order(matrices: dict) -> None:
    for block in matrices["models"].values():
        assert block["rows"] == ROWS
        assert block["row_labels"] == ["ai", "ai", "real", "real", "ai", "real"]
        assert block["columns"] == [*ORDER, POOLED]
    assert matrices["threshold"] == 0.5 and matrices["cost_model"]["c_fa"] == 1.0
    assert "failed track counts as misclassified" in matrices["note"]


def test_tpr_fpr_counts_a_failed_track_as_misclassified(matrices: dict) -> None:
    alpha, beta = matrices["models"]["alpha"], matrices["models"]["beta"]
    assert alpha["tpr_fpr"] == _approx([
        [1.0, 1.0, 0.5, 5 / 6],  # g1: its failed aac track is a miss
        [1.0, 0.0, 1.0, 4 / 6],
        [0.0, 0.0, 0.5, 1 / 6],  # r1: its failed aac track is a false positive
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 0.5, 0.75, 9 / 12],
        [0.0, 0.0, 0.25, 1 / 12],
    ])  # fmt: skip
    assert alpha["n"] == [[2, 2, 2, 6]] * 4 + [[4, 4, 4, 12]] * 2
    assert alpha["n_failed"] == [
        [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]
    ]  # fmt: skip
    assert beta["tpr_fpr"] == _approx([
        [0.5, 1.0, 0.5, 4 / 6],
        [None, None, None, None],  # no row of g2: undefined, not zero
        [0.5, 0.0, 0.0, 1 / 6],
        [0.0, 0.5, 1.0, 0.5],  # both aac tracks failed: both false positives
        [0.5, 1.0, 0.5, 4 / 6],
        [0.25, 0.25, 0.5, 4 / 12],
    ])  # fmt: skip
    assert beta["n"][1] == [0, 0, 0, 0] and beta["n_failed"][3] == [0, 0, 2, 2]


def test_eer_compares_each_row_with_the_whole_other_class(matrices: dict) -> None:
    """alpha, mp3: g2 {.45, .35} against real {.1, .2, .3, .4} crosses FPR = FNR at 1/4; the
    pooled column of g2 (6 AI, 11 scored real) crosses on FNR = 1/6; the corner (11 against 11)
    on FNR = 1/11. beta, pooled g1 crosses on FPR = 2/10 with FNR between 1/6 and 1/3."""
    alpha, beta = matrices["models"]["alpha"], matrices["models"]["beta"]
    assert alpha["eer"] == _approx([
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.25, 0.0, 1 / 6],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 0.25, 0.0, 1 / 11],
        [0.0, 0.25, 0.0, 1 / 11],
        [0.0, 0.25, 0.0, 1 / 11],
    ])  # fmt: skip
    assert beta["eer"] == _approx([
        [0.25, 0.0, 0.5, 0.2],
        [None, None, None, None],
        [0.5, 0.0, 0.5, 1 / 6],
        [0.0, 0.0, None, 0.25],  # no scored r2 track under aac
        [0.25, 0.0, 0.5, 0.2],
        [0.25, 0.0, 0.5, 0.2],
    ])  # fmt: skip


def test_min_dcf_uses_the_runs_cost_model(matrices: dict) -> None:
    """With even costs the normalised DCF is Pmiss + Pfa, so minDCF = min(Pmiss + Pfa): alpha's
    g2 under mp3 reaches 0 + 1/4 at 0.35. ASVspoof's default costs weigh a real track called AI
    1.9 times an AI track missed: 1.9 * 1/4 at 0.35."""
    alpha, beta = matrices["models"]["alpha"], matrices["models"]["beta"]
    assert alpha["min_dcf"][1][1] == pytest.approx(0.25)
    assert alpha["min_dcf"][0] == [pytest.approx(0.0)] * 4
    assert beta["min_dcf"][2][0] == pytest.approx(0.5)
    assert beta["min_dcf"][1] == [None] * 4 and beta["min_dcf"][3][2] is None
    default = condition_matrices(frame(), 0.5, ORDER, SUBSETS)
    assert default["cost_model"] == CostModel().to_json()
    assert default["models"]["alpha"]["min_dcf"][1][1] == pytest.approx(0.475)
    assert run_cost_model(meta(cost_model=EVEN_COSTS)) == CostModel(**EVEN_COSTS)
    assert run_cost_model(meta()) == CostModel()


def test_equal_error_rate_is_the_metrics_eer() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(40) < 0.4
    prob = np.round(rng.random(40), 1)  # ties on purpose
    assert equal_error_rate(y, prob) == binary_metrics(y, prob, resamples=0)["eer"]
    assert equal_error_rate(y[y], prob[y]) is None
    with pytest.raises(ValueError, match="finite"):
        equal_error_rate(y, np.where(y, np.nan, prob))


def _section(report: str) -> str:
    return report[report.index("## Condition matrices") :]


def test_reports_carry_the_matrices_byte_identically(tmp_path: Path) -> None:
    path = write_parquet(frame(), tmp_path / "predictions.parquet", meta(cost_model=EVEN_COSTS))
    first = write_reports(path, tmp_path / "one")
    shuffled = frame().sample(frac=1.0, random_state=2).reset_index(drop=True)
    other = write_parquet(shuffled, tmp_path / "shuffled.parquet", meta(cost_model=EVEN_COSTS))
    second = write_reports(other, tmp_path / "two")
    for name in ("robustness.json", "report.md"):
        assert first[name].read_bytes() == second[name].read_bytes(), name
    robustness = json.loads(first["robustness.json"].read_text())
    alpha = robustness["matrices"]["models"]["alpha"]
    assert alpha["columns"] == [*ORDER, POOLED] and alpha["rows"] == ROWS
    assert alpha["eer"][1][3] == round(1 / 6, 6) and alpha["min_dcf"][1][1] == 0.25
    assert robustness["matrices"]["models"]["beta"]["tpr_fpr"][1] == [None] * 4
    assert robustness["matrices"]["cost_model"]["p_attack"] == 0.5

    section = _section(first["report.md"].read_text())
    assert section.count("\n### ") == 2 and "\n### alpha\n" in section
    assert "P(attack) 0.5, C_miss 1, C_fa 1" in section
    assert "a failed track counts as misclassified" in section
    # alpha's g2 row of the EER table in percent, codec names as in Table X, pooled column last.
    for line in (
        "| subset     | wav | mp3_128 | aac_128 | **pooled** |",
        "| g2         | 0.0 |    25.0 |     0.0 |       16.7 |",
        "| **pooled** | 0.0 |    25.0 |     0.0 |        9.1 |",
        "| g2         | 0.000 |   0.250 |   0.000 |      0.167 |",
        "| g1           | TPR  | 100.0 |   100.0 | 50.0 (1 failed) | 83.3 (1 failed) |",
        "| **all real** | FPR  |   0.0 |     0.0 | 25.0 (1 failed) |  8.3 (1 failed) |",
        "| g2         |  n/a |     n/a |     n/a |        n/a |",  # beta has no g2 rows
    ):
        assert f"\n{line}\n" in section, line

    png = first["conditions.png"].read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    import matplotlib.image

    image = matplotlib.image.imread(first["conditions.png"])
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200


def test_a_run_without_variants_has_no_matrices(tmp_path: Path) -> None:
    plain = frame().query("variant == 'codec:wav'").assign(variant="original")
    path = write_parquet(plain, tmp_path / "predictions.parquet", meta(variants=["original"]))
    paths = write_reports(path, tmp_path / "out")
    assert "conditions.png" not in paths and "robustness.json" not in paths
    assert "## Condition matrices" not in paths["report.md"].read_text()


def test_a_codec_run_has_one_column_per_codec(file_bench: Bench, tmp_path: Path) -> None:
    """The pooled rows of a real run agree with the per-variant TPR/FPR of robustness.json once
    its failed tracks (scored-track rates there) are counted as misclassified."""
    options = RunOptions(out=tmp_path / "runs", workers=0, batch_size=4, split="all",
                         chains=[[Codec("wav")], [Codec("mp3-128")]])  # fmt: skip
    result = run(file_bench, resolve_models("counting"), options)
    robustness = json.loads((result.run_dir / "robustness.json").read_text())
    block = robustness["matrices"]["models"]["counting"]
    assert block["columns"] == ["codec:wav", "codec:mp3-128", POOLED]
    assert block["rows"] == ["ai_upsampled", "real_tones", "all AI", "all real"]
    preds, _ = read_predictions(result.run_dir / "predictions.parquet")
    for j, variant in enumerate(robustness["order"]):
        seen = robustness["variants"]["counting"][variant]
        part = preds[preds.variant == variant]
        for row, label, rate in ((2, "ai", seen["tpr"]), (3, "real", seen["fpr"])):
            mine = part[part.label == label]
            scored = int((mine.status == "scored").sum())
            failed = len(mine) - scored
            assert (block["n"][row][j], block["n_failed"][row][j]) == (len(mine), failed)
            # Failed AI tracks are misses (add nothing), failed real tracks false positives.
            called = rate * scored + (failed if label == "real" else 0)
            assert block["tpr_fpr"][row][j] == pytest.approx(called / len(mine), abs=1e-6)
        assert sum(block["n_failed"][r][j] for r in (2, 3)) == seen["n_failed"]
    assert (result.run_dir / "conditions.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "## Condition matrices" in (result.run_dir / "report.md").read_text()
