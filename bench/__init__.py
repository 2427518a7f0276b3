"""Load and event benchmarks of the suite (`make bench`, `make bench-quick`)."""
