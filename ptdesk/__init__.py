"""ptdesk: the workstation desk for teams that share GPU machines."""

__version__ = "0.1.0"
