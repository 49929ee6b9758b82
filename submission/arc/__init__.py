"""The pure ARC core: grids, tasks, augmentations, text formats, prompts, voting, scoring and the
submission file. numpy only: imports no engine, no pipeline."""
