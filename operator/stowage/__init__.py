"""stowage: every kind of storage for a Kubernetes cluster, from one place."""

__version__ = "0.1.0"
