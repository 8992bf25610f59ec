"""The audit trail: who read or changed personal data and keys, when, for which org."""
