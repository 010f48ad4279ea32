"""Run recipes, one YAML per reproducible experiment (data, no code): installed as the package
`artifactbench.data.runners` so that `artifactbench.recipes` finds them in a checkout and after
install."""
