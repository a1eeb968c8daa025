"""Endpoint settings for an LLM provider, from code or from the environment.

``LLMProviderConfig`` says which provider to talk to and how; ``create_llm_service_*``
turn it into an ``LLMService``. Invariants:
- The provider is stored in canonical form (``openai``, ``anthropic``, ``echo``);
  aliases are accepted case-insensitively, anything else raises.
- ``os.environ`` is read only by ``create_llm_service_from_env`` (and by ``from_env``
  when no ``env`` mapping is given).
- Each variable ``<prefix>_X`` falls back to ``<fallback_prefix>_X`` when unset or empty;
  a missing required variable is reported by its exact names, all of them at once.

``extra`` holds provider settings that are not fields. From the environment:
``ECHO_REPLY`` → ``echo_reply``, ``ECHO_SLEEP`` → ``echo_sleep_s`` (float),
``SUPPORTS_STREAM`` … ``SUPPORTS_PDF_INPUT_RESPONSES`` → ``supports_stream`` …
(bool), ``LLM_DEBUG`` → ``llm_debug`` (bool). Transports also read ``default_headers``
(a dict of HTTP headers). ``extra`` never reaches a request body: per-call body fields
go in ``LLMRequest.extra``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from power_loop.contracts.errors import InvalidArgumentError
from power_loop.contracts.json import JSONObject
from power_loop.llm.contract import LLMService

__all__ = [
    "PROVIDER_ALIASES",
    "LLMProviderConfig",
    "create_llm_service_from_config",
    "create_llm_service_from_env",
]

PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "openai-compatible": "openai",
    "openai_compatible": "openai",
    "anthropic": "anthropic",
    "claude": "anthropic",
    "dashscope-anthropic": "anthropic",
    "echo": "echo",
    "stub": "echo",
}
"""Every accepted provider spelling (lower case) mapped to its canonical name."""

_CAPABILITIES = (
    "SUPPORTS_STREAM", "SUPPORTS_TOOLS", "SUPPORTS_IMAGE_INPUT", "SUPPORTS_DATA_URL",
    "SUPPORTS_PDF_INPUT_CHAT", "SUPPORTS_PDF_INPUT_RESPONSES",
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _canonical_provider(provider: str) -> str:
    canonical = PROVIDER_ALIASES.get(provider.strip().lower())
    if canonical is None:
        known = ", ".join(sorted(PROVIDER_ALIASES))
        raise InvalidArgumentError(f"unknown LLM provider {provider!r}: use one of {known}")
    return canonical


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMProviderConfig:
    """Which provider to call and how.

    Example:
        >>> cfg = LLMProviderConfig(base_url="http://127.0.0.1:8000/v1", api_key="k", model="m")
        >>> cfg.provider, cfg.max_retries
        ('openai', 3)

    Raises:
        InvalidArgumentError: (``invalid_argument``) an unknown provider, an empty model
            (except for ``echo``) or an out-of-range number; every problem is named.
    """

    base_url: str
    """API root, e.g. ``https://api.openai.com/v1``."""
    api_key: str = field(repr=False)
    """Secret; never shown in ``repr``."""
    model: str
    """Default model of every request (``LLMRequest.model`` overrides it)."""
    provider: str = "openai"
    """``openai`` (any OpenAI-compatible endpoint), ``anthropic`` or ``echo``, or an alias."""
    timeout_s: float = 180.0
    """Bound of one HTTP attempt (connect, each read, write)."""
    max_tokens: int = 8000
    """Default completion budget of every request."""
    temperature: float | None = 0.0
    """Default sampling temperature; ``None`` sends none."""
    max_retries: int = 3
    """Retries after the first attempt (the service's policy has ``max_retries + 1`` attempts)."""
    extra: JSONObject = field(default_factory=dict)
    """Provider settings that are not fields (see the module docstring)."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        provider = PROVIDER_ALIASES.get(str(self.provider).strip().lower())
        if provider is None:
            problems.append(
                f"unknown provider {self.provider!r}: use one of {', '.join(sorted(PROVIDER_ALIASES))}"
            )
        else:
            object.__setattr__(self, "provider", provider)
        if provider != "echo" and not (self.model or "").strip():
            problems.append("model is empty: name the model to call (e.g. gpt-4o-mini)")
        if not self.timeout_s > 0:
            problems.append(f"timeout_s must be > 0, not {self.timeout_s!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            problems.append(f"max_tokens must be an int >= 1, not {self.max_tokens!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            problems.append(f"max_retries must be an int >= 0, not {self.max_retries!r}")
        if problems:
            raise InvalidArgumentError("invalid LLMProviderConfig: " + "; ".join(problems))

    @classmethod
    def from_env(
        cls,
        *,
        prefix: str = "POWER_LOOP",
        fallback_prefix: str | None = "OPENAI_COMPAT",
        env: Mapping[str, str] | None = None,
    ) -> LLMProviderConfig:
        """Read ``<prefix>_X`` (falling back to ``<fallback_prefix>_X``) variables.

        Args:
            prefix: the primary prefix (``POWER_LOOP`` reads ``POWER_LOOP_MODEL`` …).
            fallback_prefix: the legacy prefix consulted when a variable is unset or
                empty; ``None`` or ``""`` disables the fallback.
            env: the variables to read; ``None`` reads ``os.environ``.

        Returns:
            The config. ``BASE_URL``, ``API_KEY`` and ``MODEL`` are required except for
            the ``echo`` provider.

        Raises:
            InvalidArgumentError: (``invalid_argument``) missing required variables or
                unparsable values, each named by its variable.
        """
        source: Mapping[str, str] = os.environ if env is None else env
        reader = _EnvReader(source, prefix, fallback_prefix or None)
        problems: list[str] = []
        provider_raw = reader.get("PROVIDER") or "openai"
        provider = PROVIDER_ALIASES.get(provider_raw.strip().lower())
        if provider is None:
            problems.append(
                f"{reader.describe('PROVIDER')}={provider_raw!r} is not a known provider:"
                f" use one of {', '.join(sorted(PROVIDER_ALIASES))}"
            )
        required = () if provider == "echo" else ("BASE_URL", "API_KEY", "MODEL")
        missing = [reader.describe(name) for name in required if not reader.get(name)]
        if missing:
            names = missing[0] if len(missing) == 1 else ", ".join(missing[:-1]) + " and " + missing[-1]
            problems.append(names + (" is" if len(missing) == 1 else " are") + " not set")
        kwargs: dict[str, Any] = {}
        for name, key, convert in (
            ("TIMEOUT_S", "timeout_s", float), ("MAX_TOKENS", "max_tokens", int),
            ("MAX_RETRIES", "max_retries", int),
        ):
            value = reader.get(name)
            if value:
                try:
                    kwargs[key] = convert(value)
                except ValueError:
                    problems.append(f"{reader.describe(name)}={value!r} is not a valid {convert.__name__}")
        temperature = reader.get("TEMPERATURE")
        if temperature:
            if temperature.strip().lower() in ("none", "null"):
                kwargs["temperature"] = None
            else:
                try:
                    kwargs["temperature"] = float(temperature)
                except ValueError:
                    problems.append(f"{reader.describe('TEMPERATURE')}={temperature!r} is not a number")
        extra = _env_extra(reader, problems)
        if problems:
            raise InvalidArgumentError(
                "cannot configure the LLM from the environment: " + "; ".join(problems)
            )
        return cls(
            base_url=reader.get("BASE_URL"), api_key=reader.get("API_KEY"), model=reader.get("MODEL"),
            provider=provider or "openai", extra=extra, **kwargs,
        )


class _EnvReader:
    __slots__ = ("_env", "_fallback", "_prefix")

    def __init__(self, env: Mapping[str, str], prefix: str, fallback: str | None) -> None:
        self._env, self._prefix, self._fallback = env, prefix, fallback

    def get(self, name: str) -> str:
        value = (self._env.get(f"{self._prefix}_{name}") or "").strip()
        if not value and self._fallback:
            value = (self._env.get(f"{self._fallback}_{name}") or "").strip()
        return value

    def describe(self, name: str) -> str:
        if self._fallback:
            return f"{self._prefix}_{name} (or {self._fallback}_{name})"
        return f"{self._prefix}_{name}"


def _env_extra(reader: _EnvReader, problems: list[str]) -> JSONObject:
    extra: JSONObject = {}
    reply = reader.get("ECHO_REPLY")
    if reply:
        extra["echo_reply"] = reply
    sleep = reader.get("ECHO_SLEEP")
    if sleep:
        try:
            extra["echo_sleep_s"] = float(sleep)
        except ValueError:
            problems.append(f"{reader.describe('ECHO_SLEEP')}={sleep!r} is not a number of seconds")
    for name in (*_CAPABILITIES, "LLM_DEBUG"):
        value = reader.get(name)
        if not value:
            continue
        lowered = value.lower()
        if lowered in _TRUE or lowered in _FALSE:
            extra[name.lower()] = lowered in _TRUE
        else:
            problems.append(f"{reader.describe(name)}={value!r} is not a boolean: use 1/0, true/false")
    return extra


def create_llm_service_from_config(cfg: LLMProviderConfig) -> LLMService:
    """Build the service for ``cfg.provider``.

    Example:
        >>> cfg = LLMProviderConfig.from_env(env={"POWER_LOOP_PROVIDER": "echo"})
        >>> type(create_llm_service_from_config(cfg)).__name__
        'EchoLLMService'

    Returns:
        ``OpenAICompatLLMService``, the Anthropic transport, or ``EchoLLMService``.

    Raises:
        MissingExtraError: (``extra.missing``) the provider's SDK is not installed.
        InvalidArgumentError: (``invalid_argument``) the provider has no transport in
            this installation.
    """
    provider = _canonical_provider(cfg.provider)
    if provider == "echo":
        from power_loop.llm.echo import EchoLLMService

        return EchoLLMService.from_config(cfg)
    if provider == "openai":
        from power_loop.llm.transports.openai import OpenAICompatLLMService

        return OpenAICompatLLMService(cfg)
    module_name = "power_loop.llm.transports.anthropic"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise InvalidArgumentError(
            "provider 'anthropic' has no transport in this installation of power-loop:"
            " use POWER_LOOP_PROVIDER=openai with an OpenAI-compatible endpoint"
        ) from exc
    service: LLMService = module.AnthropicLLMService(cfg)
    return service


def create_llm_service_from_env(
    *, prefix: str = "POWER_LOOP", fallback_prefix: str | None = "OPENAI_COMPAT"
) -> LLMService:
    """``create_llm_service_from_config(LLMProviderConfig.from_env(...))`` over ``os.environ``.

    Example (shell)::

        POWER_LOOP_BASE_URL=https://api.openai.com/v1 POWER_LOOP_API_KEY=sk-... \
        POWER_LOOP_MODEL=gpt-4o-mini python app.py

    Raises:
        InvalidArgumentError: (``invalid_argument``) see ``LLMProviderConfig.from_env``.
        MissingExtraError: (``extra.missing``) the provider's SDK is not installed.
    """
    return create_llm_service_from_config(
        LLMProviderConfig.from_env(prefix=prefix, fallback_prefix=fallback_prefix, env=os.environ)
    )
