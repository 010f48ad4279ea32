"""Side flows of the open ArtifactNet: train it (`train`), train its unbounded twin (`twin`),
export it to ONNX (`export`), ablate its channels (`ablate`); `flows` runs each on a bench."""

# Phase 1 teachers the trainer accepts; auto: Demucs when its weights are on disk, else HPSS.
TEACHERS = ("auto", "demucs", "hpss")
