"""What a run leaves behind: the run folder, logger and checkpoint writer (``folder``), the
history and results.json (``results``), the measurements (``measure``) and the plots (``plots``).
"""
