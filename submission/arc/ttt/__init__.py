"""The TTT data: leave-one-out tasks from a task's demos and the augmenters that multiply them."""
