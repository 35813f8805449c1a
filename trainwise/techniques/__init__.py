"""Training techniques as pure functions (tensors in, tensors out; weights in, weights out).

Each module holds the mathematics of one technique and nothing about the training loop; the thin
callbacks in ``trainwise.callbacks`` apply them at one event each (see ``trainwise.callbacks.techniques``
for which config section turns on which callback). Use them directly in your own loop if you like.

- ``augment``: batch augmentation ops on the device (flip, translate, rotate, jitter, blur, erasing) and pipelines
- ``mixup``: MixUp and CutMix with soft targets
- ``ema``: exponential moving average (Polyak) of weights, with warm-up
- ``init``: weight initialization by layer type
- ``penalties``: explicit L1/L2 penalties
- ``finetune``: loading pretrained weights, freezing by name pattern, layer-wise LR multipliers
- ``progressive``: progressive resizing phases
- ``tta``: test-time augmentation (flip)
- ``ensemble``: averaging the probabilities of several runs
"""
