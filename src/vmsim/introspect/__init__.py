"""Read-only views of a running machine (vtop: one address walked level by level)."""
