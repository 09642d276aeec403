"""Analytics: progress by area and dimension, projected from the REGISTRY and LOGBOOK streams."""
