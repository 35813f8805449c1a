"""Training techniques, one file each: the pure functions first (tensors in, tensors out; weights in,
weights out), then the thin callback that applies them at one or two events of the loop, then its
``register(Technique(...))`` (see ``trainwise.techniques.registry``). The functions work in a loop of
your own too. ``registry.all_techniques()`` lists them; docs/techniques.md has a section for each.
"""
