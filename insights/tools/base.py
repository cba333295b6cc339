"""What a tool is: a name, a description, typed parameters and a read-only function of the
account. The parameters are declared once: they validate the arguments (types, enums, bounds,
lengths; an unknown argument is an error) and they are the JSON schema the LLM is given, so the
two cannot disagree.

The account is never a parameter: it is the `Context` the server builds from the request (the
URL's account checked against the user's memberships), as PostHog binds the team.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from ads.models import Advertiser

# Text arguments are names and period phrases: longer is not a name of this account.
MAX_TEXT = 200


class ToolError(Exception):
    """The tool ran but has no answer to give (an unknown name, a period it cannot read): the
    message is said to the person (or given to the model) as it is."""


class ArgumentError(ToolError):
    """An argument that does not fit its parameter: the message names the parameter."""


@dataclass(frozen=True)
class Context:
    """Who asks, bound by the server: the account, and the moment its local days count from."""

    advertiser: Advertiser
    now: dt.datetime = field(default_factory=timezone.now)

    @property
    def today(self) -> dt.date:
        return timezone.localtime(self.now, self.advertiser.tzinfo).date()


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "string" or "integer"
    description: str
    required: bool = False
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    default: Any = None

    def schema(self) -> dict:
        schema: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.enum:
            schema["enum"] = list(self.enum)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.type == "string" and not self.enum:
            schema["maxLength"] = MAX_TEXT
        return schema

    def clean(self, value: Any) -> Any:
        if self.type == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, str) and value.strip().isdigit():
                    value = int(value.strip())
                else:
                    raise ArgumentError(f"`{self.name}` must be a whole number.")
            if self.minimum is not None and value < self.minimum:
                raise ArgumentError(f"`{self.name}` must be at least {self.minimum}.")
            if self.maximum is not None and value > self.maximum:
                raise ArgumentError(f"`{self.name}` must be at most {self.maximum}.")
            return value
        # A name may come as an id number: ids are names too (resolved in this account only).
        if isinstance(value, int) and not isinstance(value, bool) and not self.enum:
            value = str(value)
        if not isinstance(value, str):
            raise ArgumentError(f"`{self.name}` must be text.")
        value = value.strip()
        if self.enum:
            if value.lower() not in self.enum:
                raise ArgumentError(f"`{self.name}` must be one of: {', '.join(self.enum)}.")
            return value.lower()
        if len(value) > MAX_TEXT:
            raise ArgumentError(f"`{self.name}` is longer than {MAX_TEXT} characters.")
        return value


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    params: tuple[Param, ...]
    function: Callable[..., dict]

    def schema(self) -> dict:
        """The tool as the chat-completions protocol declares it."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {param.name: param.schema() for param in self.params},
                    "required": [param.name for param in self.params if param.required],
                    "additionalProperties": False,
                },
            },
        }

    def clean(self, arguments: Any) -> dict:
        """The arguments checked against the parameters, defaults filled in; ArgumentError
        names the first that does not fit."""
        if not isinstance(arguments, dict):
            raise ArgumentError("The arguments must be a JSON object.")
        known = {param.name: param for param in self.params}
        unknown = sorted(set(arguments) - set(known))
        if unknown:
            raise ArgumentError(f"Unknown argument `{unknown[0]}` for {self.name}.")
        cleaned = {}
        for param in self.params:
            value = arguments.get(param.name)
            if value is None or value == "":
                if param.required:
                    raise ArgumentError(f"`{param.name}` is required.")
                if param.default is not None:
                    cleaned[param.name] = param.default
                continue
            cleaned[param.name] = param.clean(value)
        return cleaned

    def run(self, context: Context, arguments: Any) -> dict:
        return self.function(context, **self.clean(arguments))
