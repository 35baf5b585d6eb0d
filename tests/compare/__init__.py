"""Tests of lightning_mnist/compare/."""
