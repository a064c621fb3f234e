"""Fine-tunes the model on a data folder (Banking77 by default) and writes versioned checkpoints."""
