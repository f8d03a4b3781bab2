"""Offline tools that make what inference ships: the embedded head, its evaluation, the sample, the lock.

The server never imports this package; each tool runs as `python -m training.<tool>`
(docs/inference.md): `train_head` trains the embedded head, `evaluate` scores models on a labelled
set, `evalsample` draws the shipped evaluation sample, `lock` writes the model lock. They build on
`inference` and `core` only.
"""
