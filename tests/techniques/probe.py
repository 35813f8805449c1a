"""A callback that runs a function at one event, at a chosen place among the callbacks."""

from trainwise.core import Callback


class Probe(Callback):
    def __init__(self, event: str, fn, order: int = 10):
        self.order = order
        setattr(self, f"on_{event}", fn)
