"""The training loop and its parts: augmentation, schedules, checkpoints."""
