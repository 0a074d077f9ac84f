"""Request bodies of the HTTP API, validated by pydantic (invalid fields -> 422 naming the field).

Types are strict: `"0.7"` is not a temperature and `true` is not a count, so a client's mistake is an
error rather than a guess. Numbers may be given as integers where a float is expected.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STOP = 4  # as OpenAI's API
MAX_N = 16
MAX_PROMPTS = 32
MAX_LOGPROBS = 5  # as OpenAI's legacy completions


class CompletionRequest(BaseModel):
    """OpenAI's completions request. `top_k` is an extension (0 or null = no limit). An empty prompt
    samples unconditionally: generation starts from <|endoftext|>, as GPT-2's unconditional samples do."""

    model_config = ConfigDict(strict=True, extra="ignore")

    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="text, a list of texts, token ids or a list of token id lists; '' = unconditional")
    model: str | None = Field(None, description="ignored: the server serves one model (see /v1/models)")
    max_tokens: int = Field(16, ge=1, description="tokens to generate per choice (OpenAI's default 16)")
    temperature: float = Field(1.0, ge=0, le=2, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling; 1 = off")
    top_k: int | None = Field(None, ge=0, description="extension: sample among the k most likely; 0 = off")
    n: int = Field(1, ge=1, le=MAX_N, description="choices per prompt")
    stop: str | list[str] | None = Field(None, description=f"up to {MAX_STOP} strings that end a choice")
    seed: int | None = Field(None, ge=0, le=2**63 - 1,
                             description="same seed, same options -> same text; omitted = random")
    stream: bool = Field(False, description="send text as server-sent events, ending with data: [DONE]")
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS,
                                 description="log-probabilities of each token and this many alternatives")
    watermark: bool | None = Field(
        None, description="extension: bias sampling towards the green lists of the server's watermark key "
        "(Kirchenbauer et al. 2023); omitted = the server's setting; true on a server without a key is an error")
    # OpenAI fields this server does not implement: accepted only at their no-op values.
    echo: bool = False
    best_of: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    suffix: str | None = None
    user: str | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("must not be an empty list; use \"\" for an unconditional sample")
            if len(value) > MAX_PROMPTS:
                raise ValueError(f"at most {MAX_PROMPTS} prompts per request; got {len(value)}")
        return value

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: Any) -> Any:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop strings; got {len(stops)}")
        if any(not s for s in stops):
            raise ValueError("stop strings must not be empty")
        return value

    @field_validator("echo", "best_of", "presence_penalty", "frequency_penalty", "logit_bias", "suffix")
    @classmethod
    def _unsupported(cls, value: Any, info) -> Any:
        if value not in (False, None, 0, 0.0, {}) and not (info.field_name == "best_of" and value == 1):
            raise ValueError(f"{info.field_name} is not supported by this server; leave it out")
        return value

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())


class DetectRequest(BaseModel):
    """A text to inspect as GLTR does: each token's rank under the model, and a detector's score."""

    model_config = ConfigDict(strict=True, extra="ignore")

    text: str = Field(min_length=1, description="the text to check")
    alternatives: int = Field(5, ge=0, le=20, description="most likely tokens to list at each position")


class TokenizeRequest(BaseModel):
    """A text to count tokens of (the page's live count); `keep_last` also asks for the end of the text
    that is at most that many tokens."""

    model_config = ConfigDict(strict=True, extra="ignore")

    text: str = Field(description="the text to count")
    keep_last: int | None = Field(None, ge=0, description="return the text of the last this many tokens")
