"""The training-data leakage audit, a side flow: which tracks of a bench are also in another
bench (e.g. a detector's training data), as exact copies or by acoustic fingerprint.

`run.audit_benches` decodes both benches through the decode pool and writes an audit
directory (`audit.json`, `audit.md`); the reports read `audit.json` to mark results on tracks
a model was trained on. `fingerprint` holds Chromaprint and the matching thresholds, `index`
the candidate search.
"""

from artifactbench.audit.fingerprint import FingerprintUnavailable
from artifactbench.audit.run import AUDIT_VERSION, audit_benches, find_shared

__all__ = ["AUDIT_VERSION", "FingerprintUnavailable", "audit_benches", "find_shared"]
