"""The dashboard (Textual). Renders snapshots from ptdesk.core; never talks to Docker or NVML itself."""
