"""The CTR model: its features, its training, and its scoring inside decisions."""
