"""The data chain: catalogue -> verify -> sources/fetch (and their cli) -> batches, augment,
images -> the LightningDataModule (``module``)."""
