"""Stage 2, the data: read a source as shipped, check it, split it, and the tabular preprocessing."""
