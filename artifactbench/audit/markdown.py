"""``audit.md``: an audit's record as Markdown, for people (``audit.json`` holds it whole)."""

from __future__ import annotations

from typing import Any

# Matched pairs listed in audit.md; audit.json lists every one.
MAX_LISTED = 200
COLUMNS = ("label", "n_tracks", "n_exact", "n_fingerprint", "n_failed")


def _cell(value: object) -> str:
    return "-" if value is None else str(value).replace("|", "\\|")


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def audit_markdown(record: dict[str, Any]) -> str:
    """Benches, method and thresholds, per-subset counts, matched pairs and failures."""
    bench, against, method = record["bench"], record["against"], record["method"]
    totals = record["totals"]
    lines = [
        f"# Leakage audit: `{bench['name']}` ({bench['split']}) against `{against['name']}` "
        f"({against['split']})",
        "",
        f"{bench['n_tracks']} audited track(s) (fingerprint `{bench['fingerprint']}`) against "
        f"{against['n_tracks']} reference track(s) (fingerprint `{against['fingerprint']}`): "
        f"{totals['n_exact']} with an exact copy, {totals['n_fingerprint']} matched by "
        f"fingerprint only, {totals['n_failed']} not checked in full; "
        f"{len(record['failures'])} failure(s) on either side, listed below.",
        "",
        f"Exact: the {method['exact']} ({record['decode_protocol']}). Fingerprint: the "
        f"{method['fingerprint']}, first {method['max_seconds']:g} s of each track; candidates "
        f"share {method['min_votes']} item keys ({method['key_bits']} bits) at one alignment; "
        f"a match has a bit error rate <= {method['max_ber']:g} over at least "
        f"{method['min_overlap_seconds']:g} s (or {method['short_fraction']:.0%} of the shorter "
        f"track, never under {method['min_seconds']:g} s), of which at least "
        f"{method['min_distinct']:.0%} are distinct items.",
        "",
        "## Per subset",
        "",
        *_table(
            ["subset", "label", "tracks", "exact", "fingerprint only", "failed"],
            [[name, *(row[k] for k in COLUMNS)] for name, row in sorted(record["subsets"].items())],
        ),
        "",
        "## Matched pairs",
        "",
    ]
    matches = record["matches"]
    if matches:
        lines += [
            "Offset: where the reference starts relative to the audited track (negative: that "
            "many seconds into it, as a copy with its start cut off does).",
            "",
        ]
        rows = [
            [m["subset"], m["track_id"], m["against_subset"], m["against_track_id"],
             m["against_origin"], m["kind"], f"{m['ber']:.3f}", m["offset_seconds"],
             m["overlap_seconds"]]
            for m in matches[:MAX_LISTED]
        ]  # fmt: skip
        headers = ["subset", "track", "against subset", "against track", "against split"]
        lines += _table([*headers, "kind", "BER", "offset (s)", "overlap (s)"], rows)
        if len(matches) > MAX_LISTED:
            lines += ["", f"{len(matches) - MAX_LISTED} more pair(s) in audit.json."]
    else:
        lines.append("None.")
    failures = record["failures"]
    lines += ["", "## Failures", ""]
    if failures:
        rows = [[f["side"], f["subset"], f["track_id"], f["stage"], f["error"]] for f in failures]
        lines += _table(["side", "subset", "track", "stage", "error"], rows[:MAX_LISTED])
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"
