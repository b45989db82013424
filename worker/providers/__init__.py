"""Provider access: one seam (`ProviderClient`) between the pipeline and any LLM API."""

from worker.providers.client import Completion, OpenAICompatibleClient, ProviderClient

__all__ = ["Completion", "OpenAICompatibleClient", "ProviderClient"]
