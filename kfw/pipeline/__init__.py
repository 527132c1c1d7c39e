"""One run: the design, the shared context, a model through the fold loop, its W&B mirror."""
