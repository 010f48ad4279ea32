"""The paper's published figures and the demo recipe's reference outputs (data, no code):
installed as the package `artifactbench.data.reports` so that they are found in a checkout and
after install."""
