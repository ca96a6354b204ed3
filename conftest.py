"""Repository-wide pytest configuration: the e2e fixtures serve every tier."""

pytest_plugins = [
    "stowage_e2e.fixtures",
    "stowage_e2e.install",
    "stowage_e2e.helpers",
    "stowage_e2e.lvm_groups",
    "stowage_e2e.btrfs_volumes",
]
