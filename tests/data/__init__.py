"""Tests of lightning_mnist/data/."""
