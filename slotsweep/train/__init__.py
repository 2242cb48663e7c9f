"""Training one trial: the trainer (a plain function, config and callback in, result out), its
checkpoints, measured metrics, optimiser and schedule, result types and the ticket of a trained
network. Knows nothing of Ray or MLflow: `launch` and `tracking` wrap it."""
