"""Datasets: readers for the real on-disk formats, the FaceTable they return, splits, image loading and the
synthetic face generator that writes the same formats."""
