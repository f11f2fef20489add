"""Linux as referee: the same memory operations on the host kernel and on vmsim.

A differential harness.  A script in a small line language
(:mod:`~vmsim.conform.script`) runs on the host kernel through a C runner
shipped as package data and built with gcc at run time
(:mod:`~vmsim.conform.host`, ``vmops.c``) and on a vmsim process through the
scripted process API (:mod:`~vmsim.conform.vmsim_side`).  Every step is
observed on both sides - result, VMAs, smaps, pagemap flags, fault deltas -
normalised and compared (:mod:`~vmsim.conform.compare`,
:mod:`~vmsim.conform.runner`); deliberate differences and vmsim bugs still to
fix are listed in :mod:`~vmsim.conform.known_differences` and counted apart
(:mod:`~vmsim.conform.report`).  The hand-written corpus is
:mod:`vmsim.conform.corpus`, the seeded random scripts
:mod:`~vmsim.conform.generator`; ``vmsim conform`` runs both.

Layering: this package may import kernel, mm, fs and machine; nothing there
imports it.
"""
