"""Callbacks: one technique per file, each applied at one or two events (see trainwise.core)."""
