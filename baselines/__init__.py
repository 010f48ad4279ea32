"""Detector cards of the published baselines (data, no code): installed as the package
`artifactbench.data.baselines` so that the registry finds them in a checkout and after install."""
