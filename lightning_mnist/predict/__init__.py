"""Writing the predictions of ``lightning-mnist predict`` (``writer``); the images it reads
are prepared in ``lightning_mnist.data.images``.
"""
