"""Test helpers shared by the whole suite and the benchmarks."""
