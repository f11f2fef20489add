"""Host-kernel reference runner (vmops.c) and the vmsim side of the comparisons."""
