"""The fold machinery: the spec, persisted folds, the fold loop, scores under noise, the run store."""
