"""A competition's files in (download, import, open copy) and submissions out, with their scores."""
