"""Mail to target: planning, sending and tracking of the letters to targets (spec §9.7)."""
