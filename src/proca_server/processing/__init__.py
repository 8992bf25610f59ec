"""The processing pipeline: state machine, messages, lifecycle, supporter links."""
