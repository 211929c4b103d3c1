"""The operations dashboard: a server-rendered page that refreshes itself from JSON."""
