"""Tools that work with runs and run directories, one per module."""
