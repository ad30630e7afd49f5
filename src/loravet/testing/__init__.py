"""Builders of test corpora (hostile and benign files) shared by tests and benches."""
