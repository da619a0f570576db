"""The python brain: answers by calling a user function given as "package.module:function"."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from pydantic import Field, field_validator

from agentnet.agents.brains.base import BrainError, BrainReply, BrainRequest
from agentnet.agents.brains.options import BrainConfigError, BrainOptions

_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class PythonOptions(BrainOptions):
    callable: str = Field(
        description='"package.module:function"; the function takes a BrainRequest and returns str, '
        '{"text": ..., "data": {...}} or BrainReply, sync (run in a thread) or async.',
    )

    @field_validator("callable")
    @classmethod
    def _check_spec(cls, spec: str) -> str:
        if not _SPEC.match(spec):
            raise ValueError(f'must look like "package.module:function" (got {spec!r})')
        return spec


def load_callable(spec: str) -> Callable[..., Any]:
    """Import "module:attr.path"; BrainConfigError (one line) if that fails or is not callable."""
    module_name, _, attr_path = spec.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # the `agentnet` script does not put the cwd there
        sys.path.append(cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # a user module may fail with anything while importing
        raise BrainConfigError(
            f"brain 'python': cannot import module '{module_name}' for callable '{spec}': {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BrainConfigError(f"brain 'python': callable '{spec}' not found ('{part}' is missing)") from None
    if not callable(obj):
        raise BrainConfigError(f"brain 'python': '{spec}' is a {type(obj).__name__}, not a callable")
    return obj


class PythonBrain:
    name = "python"

    def __init__(self, options: PythonOptions, *, agent: str) -> None:
        self.spec = options.callable
        self.agent = agent
        self.func = load_callable(options.callable)
        # Other callables that return awaitables (async __call__, partials) are awaited after the thread call.
        self._is_async = inspect.iscoroutinefunction(self.func)

    async def reply(self, request: BrainRequest) -> BrainReply:
        try:
            if self._is_async:
                result = await self.func(request)
            else:
                # User code may block or compute; keep the event loop (and the hub's pings) free.
                result = await asyncio.to_thread(self.func, request)
                if inspect.isawaitable(result):
                    result = await result
        except BrainError:
            raise
        except Exception as exc:
            raise BrainError(f"python callable {self.spec} raised {type(exc).__name__}: {exc}") from exc
        return self._to_reply(result)

    def _to_reply(self, result: Any) -> BrainReply:
        if isinstance(result, BrainReply):
            return result
        if isinstance(result, str):
            return BrainReply(text=result)
        if isinstance(result, dict):
            text = result.get("text")
            data = result.get("data", {})
            if not isinstance(text, str) or not isinstance(data, dict):
                raise BrainError(f'python callable {self.spec} returned a dict without a str "text" (and dict "data")')
            extra = {k: v for k, v in result.items() if k not in ("text", "data")}
            return BrainReply(text=text, data={**data, **extra})
        raise BrainError(
            f"python callable {self.spec} returned {type(result).__name__}; expected str, dict or BrainReply"
        )

    async def aclose(self) -> None:
        return None
