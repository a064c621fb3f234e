"""The shared inference core: checkpoint loading, the classifier, its decision rules, scope detection, logs."""
