"""The public write-up generated from the run records; its prose lives in ``templates/``."""
