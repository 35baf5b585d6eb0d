"""Leaving the framework: Keras weights in and out, and model export."""
