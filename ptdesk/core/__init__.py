"""ptdesk's core: everything that is true without a screen. Never imports textual."""
