"""Mail to target: planning, sending and tracking of the letters to targets
(docs/mail-to-target.md)."""
