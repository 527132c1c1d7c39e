"""Deep learning on torch: networks in the fold loop, attention and the transformer, papers.

Everything here imports torch at module level, so nothing outside ``kfw/dl`` imports these
modules at its own top: ``kfw --help`` must stay free of torch.
"""
