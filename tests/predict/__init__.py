"""Tests of lightning_mnist/predict/."""
