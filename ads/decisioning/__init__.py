"""The decision engine: chooses the pod of ads for an ad break (see engine.py)."""
