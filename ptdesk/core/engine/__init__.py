"""The Docker engine: one client (local or ssh://), its errors, figures, logs, locks and network."""
