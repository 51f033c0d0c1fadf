"""This machine: its live sysctls, its /proc/net tables, and network namespaces to read defaults in."""
