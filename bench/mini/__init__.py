"""The embedded mini world: synthetic data-to-text tasks and a small LM pretrained on its prose."""
