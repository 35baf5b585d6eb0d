"""The run folder and what a run leaves in it: config, metrics, checkpoints, results, plots."""
