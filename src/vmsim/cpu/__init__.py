"""CPU engines: Unicorn-driven x86-64 CPUs that enter vmsim only through #PF and syscall."""
