"""Data layer: ground truth, features, points, batches and the synthetic benchmark."""
