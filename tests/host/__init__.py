"""Tests of the host-kernel reference runner and the vmsim side of the comparisons (vmsim.conform)."""
