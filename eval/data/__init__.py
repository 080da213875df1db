"""Inputs: datasets (a corpus and a question set, native or imported) and the label store."""
