"""Tests of vmsim.conform, the differential harness (one module per module of the package)."""
