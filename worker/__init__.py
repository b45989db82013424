"""Sluice: an asynchronous worker that runs business LLM workflows."""

__version__ = "0.1.0"
