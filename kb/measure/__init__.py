"""Offline measurement: benchmarks, public-dataset evaluation, calibration. Never imported by serving code."""
