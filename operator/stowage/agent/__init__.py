"""The mount helper: `stowage agent`, one per node and backend, run by a DaemonSet."""
