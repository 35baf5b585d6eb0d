"""Leaving the framework: Keras weights in and out (``keras_weights``) and model export
(``export``).
"""
