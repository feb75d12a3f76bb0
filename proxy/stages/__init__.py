"""The pipeline's stages, one concern each; :mod:`tenantry.proxy.pipeline` declares their order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

StageFunction = TypeVar("StageFunction", bound=Callable[..., object])


def acts_on(*api_keys: int) -> Callable[[StageFunction], StageFunction]:
    """Declare that a stage does something only for these APIs and returns None for every other one:
    the pipeline then leaves it out of the other APIs' routes (see :func:`tenantry.proxy.pipeline.routes`)."""
    def declare(stage: StageFunction) -> StageFunction:
        stage.api_keys = frozenset(api_keys)  # type: ignore[attr-defined]
        return stage
    return declare
