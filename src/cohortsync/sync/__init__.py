"""The sync engine: plan a run (evaluate, map, diff), send it in checkpointed batches, schedule."""
