"""Userspace protocol clients (ctypes bindings of libnfs and libiscsi, a TCP probe): no kernel
client, no mount, so they work on any node and in the operator's pod alike. Both sides use
them; they load neither side."""
