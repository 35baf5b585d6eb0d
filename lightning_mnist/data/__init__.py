"""The data chain: IDX files (``idx``), their verification and loading (``files``), the
fetch chain (``sources``, ``fetch``), in-memory batches (``batches``), batch augmentation
(``augment``) and the LightningDataModule (``module``).
"""
