"""Request bodies the gateway accepts, as pydantic models: the single source for validation and for
`/openapi.json`. Only parameters of the OpenAI API pass through; anything else is refused, because
a pass-through field is how clients of other gateways reached `api_base` or provider switches."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, WithJsonSchema, field_validator

from gateway.errors import APIError, bad_request, invalid_param

# Names that would let a client choose the upstream or its credentials.
UPSTREAM_OVERRIDES = {
    "api_base", "base_url", "api_key", "api_version", "api_type", "custom_llm_provider", "organization",
    "deployment_id", "endpoint", "upstream", "provider", "aws_access_key_id", "aws_secret_access_key",
    "vertex_credentials", "vertex_project", "azure_ad_token", "extra_headers", "headers", "mock_response",
}
UPSTREAM_OVERRIDE_HEADERS = {
    "api_base", "base_url", "api_version", "upstream", "upstream_url", "target_url", "provider_url",
    "litellm_api_base", "openai_base_url", "azure_endpoint", "endpoint",
}


class Open(BaseModel):
    # Strict, like the OpenAI-shaped models below: `"max_tokens": "5"` or `"stream": "yes"` is refused,
    # not coerced, since the body an upstream receives is the client's own, not pydantic's copy.
    model_config = ConfigDict(extra="allow", strict=True)


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Integer parameters, where 5.0 is accepted as 5 and sent on as 5.
INTEGRAL = ("n", "max_tokens", "max_completion_tokens", "seed", "top_logprobs", "logprobs", "best_of", "dimensions",
            "prompt", "input")
TokenId = Annotated[int, Field(ge=0, le=2**32 - 1)]


def _integral(value: Any) -> Any:
    if isinstance(value, list):
        return [_integral(v) for v in value]
    # Past 64 bits orjson has already rounded the integer to a float: not what was sent, so refused.
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2**63 else value


class StrictClosed(Closed):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator(*INTEGRAL, mode="before", check_fields=False)
    @classmethod
    def _integral(cls, value: Any) -> Any:
        """JSON has one number type: 5.0 is the integer 5 (and orjson reads integers past 64 bits as floats)."""
        return _integral(value)


class FunctionCall(Open):
    name: str | None = None
    arguments: str | None = None


class ToolCall(Open):
    id: str | None = None
    type: Literal["function", "custom"] = "function"
    function: FunctionCall


class FunctionDefinition(Open):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomDefinition(Open):
    name: str = Field(min_length=1, max_length=64)


class FunctionTool(Open):
    type: Literal["function"]
    function: FunctionDefinition


class CustomTool(Open):
    type: Literal["custom"]
    custom: CustomDefinition


Tool = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]

# Inline media are bytes, not text: confined to base64 so that no readable text rides along where
# the PII stage does not read (gateway/pii/fields.py STRUCTURAL); `pii.media` decides where they go.
BASE64 = r"^[A-Za-z0-9+/=\r\n]*$"
DATA_URL = r"^data:[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+;base64,[A-Za-z0-9+/=\r\n]*$"
MAX_CONTENT_PARTS = 1024


class ImageURL(Open):
    url: str
    detail: Literal["auto", "low", "high"] | None = None

    @field_validator("url")
    @classmethod
    def _data_is_base64(cls, value: str) -> str:
        if value[:5].lower() == "data:" and not re.fullmatch(DATA_URL, value):
            raise ValueError("an inline image must be a base64 data URL (data:image/png;base64,...)")
        return value


class InputAudio(Open):
    data: str = Field(pattern=BASE64)
    format: Literal["wav", "mp3"]


class FileInput(Open):
    file_data: str | None = Field(None, pattern=f"{BASE64}|{DATA_URL}")
    file_id: str | None = None
    filename: str | None = None


class ContentPart(Open):
    type: Literal["text", "image_url", "input_audio", "file", "refusal"]
    text: str | None = None
    refusal: str | None = None
    image_url: ImageURL | None = None
    input_audio: InputAudio | None = None
    file: FileInput | None = None


class Message(Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | Annotated[list[ContentPart], Field(max_length=MAX_CONTENT_PARTS)] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class ToolChoice(Open):
    type: Literal["function", "custom", "allowed_tools"]


class ResponseFormat(Open):
    type: Literal["text", "json_object", "json_schema"]


class Prediction(Open):
    type: Literal["content"]


class StreamOptions(Open):
    include_usage: bool | None = None


class BulkheadExtension(StrictClosed):
    """Gateway-only options, sent with the OpenAI SDK's `extra_body={"bulkhead": {...}}`."""

    context: list[str] | None = Field(None, description="Documents an answer must be grounded in.")


Stop = str | list[str] | None
# Token ids as keys. Spelled out for the OpenAPI document: pydantic writes key patterns as
# `patternProperties`, which JSON Schema reads as "other keys allowed too".
TOKEN_ID_KEY = r"^[0-9]{1,10}$"
LogitBias = Annotated[
    dict[Annotated[str, StringConstraints(pattern=TOKEN_ID_KEY)], float],
    WithJsonSchema({"type": "object", "propertyNames": {"pattern": TOKEN_ID_KEY},
                    "additionalProperties": {"type": "number"}}),
]


class _Generation(StrictClosed):
    """Parameters chat and legacy completions share."""

    model: str = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=16)
    stop: Stop = None
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: LogitBias | None = None
    user: str | None = Field(None, max_length=256)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    bulkhead: BulkheadExtension | None = None


class ChatCompletionRequest(_Generation):
    messages: list[Message] = Field(min_length=1, max_length=2048)
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: Literal["none", "auto"] | dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    prediction: Prediction | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class CompletionRequest(_Generation):
    prompt: str | list[str] | list[TokenId] | list[list[TokenId]]
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool | None = None
    best_of: int | None = Field(None, ge=1, le=16)
    suffix: str | None = None


class EmbeddingRequest(StrictClosed):
    model: str = Field(min_length=1, max_length=200)
    input: str | list[str] | list[TokenId] | list[list[TokenId]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1, le=65536)
    user: str | None = Field(None, max_length=256)
    bulkhead: BulkheadExtension | None = None


def _param(loc: tuple) -> str:
    out = ""
    for i, part in enumerate(loc):
        if i == 1 and loc[0] in FREE_FORM_KEYS and not (str(part).isdigit() and "[key]" not in loc):
            break  # the rest is a key of the caller's own, which may be personal data: never echoed
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "function-after") or part in _MODEL_NAMES or "[" in str(part):
            continue  # pydantic's union-branch labels are not parameter names
        elif loc[0] == "tools" and i == 2 and len(loc) > 3:
            continue  # the tool's `type`, which chose the branch
        else:
            out += ("." if out else "") + str(part)
    return out


# Objects whose keys are the caller's (metadata, token ids): an error names the object, not the key.
FREE_FORM_KEYS = {"metadata", "logit_bias"}
_MODEL_NAMES = {name for name, value in globals().items() if isinstance(value, type) and issubclass(value, BaseModel)}

# by endpoint name, as routing and the policy tools call the three endpoints
REQUEST_TYPES: dict[str, type[BaseModel]] = {
    "chat": ChatCompletionRequest, "completions": CompletionRequest, "embeddings": EmbeddingRequest,
}


def parse(model: type[BaseModel], body: Any) -> BaseModel:
    """Validate a decoded JSON body; raise the OpenAI-shaped error a client can act on."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    for key in body:
        if key in UPSTREAM_OVERRIDES:
            raise bad_request(
                f"'{key}' is not allowed: the gateway chooses the upstream from its policy.", key,
                code="upstream_override_forbidden",
            )
    try:
        req = model.model_validate(body)
    except ValidationError as exc:
        # The deepest error is the one that names the field at fault (the others are union branches
        # that did not apply: "should be a valid string" for a list of content parts).
        err = max(exc.errors(include_url=False, include_input=False), key=lambda e: len(e["loc"]))
        param = _param(err["loc"])
        if err["type"] == "extra_forbidden":
            raise bad_request(f"Unrecognized request argument supplied: {param}", param, "unknown_parameter") from None
        if err["type"] == "missing":
            raise invalid_param(f"Missing required parameter: '{param}'.", param) from None
        raise invalid_param(f"Invalid value for '{param}': {err['msg']}.", param) from None
    if model.model_config.get("strict"):
        for key in INTEGRAL:
            if key in body and isinstance(body[key], float | list):
                body[key] = _integral(body[key])
    return req


def check_headers(headers) -> None:
    for name in headers:
        norm = name.lower().removeprefix("x-").replace("-", "_")
        if norm in UPSTREAM_OVERRIDE_HEADERS:
            raise APIError(
                400, f"Header '{name}' is not allowed: the gateway chooses the upstream from its policy.",
                "upstream_override_forbidden", param=name,
            )
