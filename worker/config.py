"""The user's config file: providers, models and workflows, in TOML.

The file is validated as a whole when it is loaded. A mistake raises `ConfigError` whose
message names the file, the dotted path of the bad key and what is expected there, so the
user can fix it without reading code. `docs/configuration.md` documents every key.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
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


class LimitsConfig(_Strict):
    """A provider account's rate limits, shared by every worker that uses the account.

    Both limits are token buckets refilled at `limit / 60` per second. A bucket holds at
    most `burst_s` seconds of refill, so `request_burst_s = 1` enforces RPM per second, as
    providers that quantise their limits do.
    """

    requests_per_minute: int | None = Field(default=None, gt=0)
    tokens_per_minute: int | None = Field(default=None, gt=0)
    request_burst_s: float = Field(default=1.0, gt=0, le=60)
    token_burst_s: float = Field(default=60.0, gt=0, le=60)
    max_concurrency: int | None = Field(
        default=None, gt=0, description="LLM calls in flight at once across all workers."
    )
    jitter_s: float = Field(
        default=0.1, ge=0, le=5,
        description="Spacing added between requests when the request bucket holds fewer "
        "than two, because there the one-request margin does not exist.",
    )
    headroom: float = Field(
        default=0.02, ge=0, lt=0.5,
        description="Share of each limit left unused, so that network jitter between a "
        "grant here and the request's arrival at the provider does not cause 429s.",
    )


class BreakerConfig(_Strict):
    """When a provider counts as down: consecutive failures, then a pause before a probe."""

    failures: int = Field(default=5, gt=0)
    cooldown_s: float = Field(default=30.0, gt=0)


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
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)

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
    tokenizer: str | None = Field(
        default=None,
        description="tiktoken encoding such as o200k_base; unset: known from the name, "
        "else a conservative estimate.",
    )


class WorkflowConfig(_Strict):
    """One configured workflow: which kind of work, its label sets and its route."""

    kind: WorkflowKind
    route: list[str] = Field(min_length=1, description="Model keys, cheapest first.")
    fallbacks: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per route model: models to use instead when its provider fails.",
    )
    max_cost_usd: Decimal | None = Field(
        default=None, gt=0, description="Ceiling on the price of all LLM calls of one job."
    )
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
            self._check_models(f"workflows.{key}.route", workflow.route)
            for step, fallbacks in workflow.fallbacks.items():
                if step not in workflow.route:
                    raise ValueError(
                        f"workflows.{key}.fallbacks has key {step!r}, which is not in "
                        f"its route {workflow.route}"
                    )
                if step in fallbacks:
                    raise ValueError(f"workflows.{key}.fallbacks.{step} lists {step!r} "
                                     "itself; a fallback must be another model")
                self._check_models(f"workflows.{key}.fallbacks.{step}", fallbacks)
        self._check_token_buckets()
        return self

    def _check_token_buckets(self) -> None:
        """Refuse a model whose output budget alone exceeds its provider's token bucket."""
        for key, model in self.models.items():
            limits = self.providers[model.provider].limits
            if not limits.tokens_per_minute:
                continue
            capacity = (limits.tokens_per_minute * (1 - limits.headroom) / 60
                        * limits.token_burst_s)
            if model.max_output_tokens >= capacity:
                raise ValueError(
                    f"models.{key}.max_output_tokens = {model.max_output_tokens} does not fit "
                    f"provider {model.provider}'s token bucket of {capacity:.0f} tokens "
                    "(limits.tokens_per_minute x token_burst_s / 60); raise the limit or "
                    "lower max_output_tokens")

    def _check_models(self, where: str, model_keys: list[str]) -> None:
        for model_key in model_keys:
            if model_key not in self.models:
                raise ValueError(
                    f"{where} names {model_key!r}, which is not a key of [models] "
                    f"(known: {', '.join(sorted(self.models))})"
                )

    def target(self, model_key: str) -> Target:
        model = self.models[model_key]
        return Target(model_key, model, self.providers[model.provider])

    def route_steps(self, workflow: str) -> list[list[Target]]:
        """Return, per route step, the step's model followed by its fallbacks."""
        config = self.workflows[workflow]
        return [
            [self.target(key) for key in [step, *config.fallbacks.get(step, [])]]
            for step in config.route
        ]

    def uses_simulator(self) -> bool:
        """Tell whether any workflow's route or fallback reaches a simulated provider."""
        return any(
            target.provider.simulated
            for workflow in self.workflows
            for step in self.route_steps(workflow)
            for target in step
        )


@dataclass(frozen=True)
class Target:
    """One model to call, with the provider that serves it."""

    key: str
    model: ModelConfig
    provider: ProviderConfig


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
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key; remove it or check its spelling")
        elif error["type"] == "missing":
            lines.append(f"  {where}: required key is missing")
        elif not where:
            # Cross-reference checks name their keys in the message itself.
            lines.append("  " + error["msg"].removeprefix("Value error, "))
        else:
            lines.append(f"  {where}: {error['msg']} (got {_short(error.get('input'))})")
    return "\n".join(lines)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@lru_cache(maxsize=1)
def get_config() -> SluiceConfig:
    """Return the process's config, loaded once from the path the settings name."""
    settings = get_settings()
    return load_config(resolve_config_path(settings), settings.simulator_url)
