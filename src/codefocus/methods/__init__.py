"""Attribution methods, found by name through a registry."""
