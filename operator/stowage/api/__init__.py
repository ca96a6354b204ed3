"""The stowage API (group stowage.io, version v1alpha1): models and CRD generation."""
