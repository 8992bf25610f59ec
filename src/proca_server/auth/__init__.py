"""Permission bits, roles, and request authentication."""
