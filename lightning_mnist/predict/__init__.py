"""Predicting your own images: reading and preparing files (``images``, ``files``) and
writing the predictions (``writer``).
"""
