"""Datamodules: one per dataset family, datasets held as tensors and batched by index."""
