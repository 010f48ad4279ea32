"""Train (`train`), export to ONNX (`export`) and ablate (`ablate`) the open ArtifactNet."""
