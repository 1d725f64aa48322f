"""Widgets of the dashboard: each renders snapshots it is given, nothing else."""
