"""The local Docker lab cluster that stands in for a Raspberry Pi cluster."""
