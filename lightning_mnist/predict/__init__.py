"""Writing ``lightning-mnist predict``'s output; its images are prepared in ``data.images``."""
