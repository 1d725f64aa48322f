"""What this machine's kernel says: cgroup figures, live processes, workspace folders."""
