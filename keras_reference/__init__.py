"""The tutorial's original Keras code, runnable today, writing the same run folder as the port.

Run it with ``python -m keras_reference --data.data_dir DIR --out DIR``. This package imports keras,
numpy and matplotlib, and of ``lightning_mnist`` only the torch-free ``presets`` (each preset's
epochs, patience and batch size, read from its YAML), ``atomic`` (the file writer),
``run.plots`` (the learning-curve pictures, matplotlib only) and
``ops.malloc`` (the allocator setting both frameworks run under, through ctypes); never
torch (a test checks ``sys.modules``), so the two frameworks meet only in the comparison and
the parity tests.
"""

import os

# Pin the backend before any submodule imports keras; a KERAS_BACKEND set by the user still wins
# (e.g. KERAS_BACKEND=torch separates "Keras API vs Lightning" from "TF vs torch kernels").
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
