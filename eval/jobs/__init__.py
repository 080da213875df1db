"""Background jobs: long work in a process of its own, reporting to files beside the runs."""
