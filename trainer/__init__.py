"""Fine-tunes the intent model on Banking77 and writes versioned checkpoints."""
