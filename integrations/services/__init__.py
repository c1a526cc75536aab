"""Every write for connections, syncs and imports goes through these functions."""
