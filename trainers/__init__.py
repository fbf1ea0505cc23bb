"""LightningModule and callbacks shared by every task and optimizer."""
