"""The resource table and the rules of each resource (one strategy module per resource)."""
