"""Canary analysis, pure: the PromQL of each check, the statistics, and the verdicts."""
