"""Network definitions imported only when a backbone is built (not at registry load)."""
