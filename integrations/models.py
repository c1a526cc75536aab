"""Integration connections, store mappings and sync runs arrive with the connectors."""
