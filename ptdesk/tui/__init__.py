"""The dashboard (Textual). It asks the core through the Workstation only (the import contracts in
pyproject.toml hold it to that) and draws the immutable snapshots it gets back; it never talks to
Docker or NVML itself."""
