"""The data chain: the dataset catalogue (``catalogue``), verification and loading
(``verify``), the fetch chain (``sources``, ``fetch``) and its command (``cli``), users' own
images (``images``), in-memory batches (``batches``), batch augmentation (``augment``) and
the LightningDataModule (``module``).
"""
