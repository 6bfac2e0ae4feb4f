"""Evaluation of text recognition: metrics and reports."""
