"""Opt-in accelerated operators. Nothing here runs unless a model asks for it."""
