"""The user's config file: providers, models and workflows, in TOML.

The file is validated as a whole when it is loaded. A mistake raises `ConfigError` whose
message names the file, the dotted path of the bad key and what is expected there, so the
user can fix it without reading code. `docs/configuration.md` documents every key.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from worker.errors import ConfigError
from worker.settings import Settings, get_settings

StructuredOutput = Literal["json_schema", "json_object"]
WorkflowKind = Literal["ticket_classification", "document_extraction"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Strict):
    """One provider account reached through an OpenAI-compatible base URL."""

    base_url: str
    api_key_env: str | None = Field(
        default=None, description="Environment variable that holds the API key."
    )
    region: str = "unknown"
    structured_output: StructuredOutput = "json_schema"
    timeout_s: float = Field(default=60.0, gt=0)
    simulated: bool = Field(
        default=False, description="True for the built-in simulator, which the demo starts."
    )

    def api_key(self) -> str:
        """Return the key from the environment; local servers accept any non-empty key."""
        if self.api_key_env is None:
            return "not-needed"
        return os.environ.get(self.api_key_env, "")


class ModelConfig(_Strict):
    """One model of one provider, with the limits and prices Sluice plans with."""

    provider: str
    name: str = Field(description="The model's name at the provider.")
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    input_usd_per_mtok: Decimal = Field(ge=0)
    cached_input_usd_per_mtok: Decimal | None = Field(default=None, ge=0)
    output_usd_per_mtok: Decimal = Field(ge=0)
    price_date: date


class WorkflowConfig(_Strict):
    """One configured workflow: which kind of work, its label sets and its route."""

    kind: WorkflowKind
    route: list[str] = Field(min_length=1, description="Model keys, cheapest first.")
    categories: list[str] = Field(default_factory=list)
    intents: list[str] = Field(default_factory=list)
    temperature: float = Field(default=0.0, ge=0, le=2)

    @model_validator(mode="after")
    def _tickets_need_categories(self) -> WorkflowConfig:
        if self.kind == "ticket_classification" and not self.categories:
            raise ValueError("a ticket_classification workflow needs a non-empty categories list")
        return self


class SluiceConfig(_Strict):
    """The whole config file."""

    providers: dict[str, ProviderConfig]
    models: dict[str, ModelConfig]
    workflows: dict[str, WorkflowConfig]

    @model_validator(mode="after")
    def _references_exist(self) -> SluiceConfig:
        for key, model in self.models.items():
            if model.provider not in self.providers:
                raise ValueError(
                    f"models.{key}.provider = {model.provider!r} is not a key of [providers] "
                    f"(known: {', '.join(sorted(self.providers))})"
                )
        for key, workflow in self.workflows.items():
            for model_key in workflow.route:
                if model_key not in self.models:
                    raise ValueError(
                        f"workflows.{key}.route names {model_key!r}, which is not a key of "
                        f"[models] (known: {', '.join(sorted(self.models))})"
                    )
        return self

    def route_models(self, workflow: str) -> list[tuple[str, ModelConfig, ProviderConfig]]:
        """Return (model key, model, provider) for each step of a workflow's route."""
        steps = []
        for model_key in self.workflows[workflow].route:
            model = self.models[model_key]
            steps.append((model_key, model, self.providers[model.provider]))
        return steps

    def uses_simulator(self) -> bool:
        """Tell whether any workflow's route reaches a simulated provider."""
        return any(
            provider.simulated
            for workflow in self.workflows
            for _, _, provider in self.route_models(workflow)
        )


def default_config_path() -> Path:
    """Return the bundled default config, which routes every workflow to the simulator."""
    return Path(str(resources.files("worker").joinpath("sluice.example.toml")))


def resolve_config_path(settings: Settings) -> Path:
    if settings.config_file is not None:
        return settings.config_file
    local = Path("sluice.toml")
    return local if local.is_file() else default_config_path()


def load_config(path: Path, simulator_url: str | None = None) -> SluiceConfig:
    """Read and validate a config file; `simulator_url` replaces simulated providers' URLs."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"config file {path} does not exist; set SLUICE_CONFIG_FILE to an existing file"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc

    if simulator_url:
        for provider in raw.get("providers", {}).values():
            if isinstance(provider, dict) and provider.get("simulated"):
                provider["base_url"] = simulator_url
    try:
        return SluiceConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from exc


def _describe(path: Path, exc: ValidationError) -> str:
    lines = [f"config file {path} is invalid:"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key; remove it or check its spelling")
        else:
            lines.append(f"  {where}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_config() -> SluiceConfig:
    """Return the process's config, loaded once from the path the settings name."""
    settings = get_settings()
    return load_config(resolve_config_path(settings), settings.simulator_url)
