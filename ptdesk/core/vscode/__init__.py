"""VS Code Remote-SSH without internet: a cache of VS Code Server builds per commit on each workstation."""
