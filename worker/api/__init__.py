"""The intake API: jobs in over HTTP, state and results out."""

from worker.api.app import create_app

__all__ = ["create_app"]
