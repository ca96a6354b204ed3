"""End-to-end support for stowage: the test cluster, test hosts, images, kubectl helpers."""
