"""Models: each returns its outputs and knows its loss and metrics."""
