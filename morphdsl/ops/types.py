"""Argument types shared by op schemas, and the type of the tensors ops take and give."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Optional

from pydantic import Field, Strict

Int = Annotated[int, Strict()]
PosInt = Annotated[int, Strict(), Field(gt=0)]
Lanes = Optional[PosInt]


@dataclass(frozen=True)
class TensorType:
    """Shape of a tensor flowing in the model: (B, T) token ids or (B, T, C) features."""

    channels: int | None  # None: token ids
    lanes: int | None = None

    @property
    def dims(self) -> tuple:
        return ("B", "T") if self.channels is None else ("B", "T", self.channels)

    def __str__(self) -> str:
        if self.channels is None:
            return "(B, T) ids"
        return f"(B, T, {self.channels})" + (f" in {self.lanes} lanes" if self.lanes else "")
