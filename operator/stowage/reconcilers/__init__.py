"""kopf handlers: read desired state, call drivers and builders, write through stowage.kube."""
