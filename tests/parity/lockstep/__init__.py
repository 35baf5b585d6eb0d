"""Lockstep parity: the tutorial network trained in Keras and in torch from the same weights,
on the same batches in the same order, with the same dropout masks, step for step.

Run it with ``python -m tests.parity.lockstep --out reports/lockstep`` from the repository root.

- ``plan.py``: what both sides share, computed with NumPy only: the batch order and the
  dropout masks from (seed, epoch, step), and the tutorial's preprocessing.
- ``keras_side.py``: Keras's own ``train_step`` body with the mask injected at the dropout
  point; ``torch_side.py``: the same on ``TutorialCNN``'s modules, with Keras's Adam update.
- ``run.py``: the loop and the record; ``bars.py``: the three parity bars; ``report.py``: the
  JSON, the Markdown and the plot; ``__main__.py``: the command.

Besides Keras against torch, torch runs against itself with another thread count (another
summation order): the yardstick for pure float32 rounding drift, judged at the same step.
"""
