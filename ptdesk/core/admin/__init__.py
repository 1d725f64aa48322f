"""Looking after ptdesk itself: doctor, the workstations list, the resident server."""
