"""Appendix C effective bandwidth of a residual: the measurement and its run directory."""
