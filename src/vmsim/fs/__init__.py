"""The file system side: a sandboxed VFS over a host directory, and procfs."""
