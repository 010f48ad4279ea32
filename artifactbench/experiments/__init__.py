"""Side flows that use detectors but are not detectors: training, export and ablation of the
open ArtifactNet. They read benches and write their own outputs; nothing in scoring imports them."""
