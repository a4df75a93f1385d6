"""Graph → graph passes."""
