"""``mnist-compare``: Keras vs Lightning seed by seed, its report from the saved runs, and the
speed benchmark (``bench``). Nothing else in the package imports it."""
