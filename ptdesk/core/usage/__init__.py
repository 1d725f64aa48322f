"""Who really used the GPUs: a compact history of GPU use recorded by the box's service, and the report."""
