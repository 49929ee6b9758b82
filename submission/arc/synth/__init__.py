"""The stage-1 task generator: rule families, the split by function, drawing tasks."""
