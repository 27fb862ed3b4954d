"""Argument types shared by op schemas."""
from typing import Annotated, Optional

from pydantic import Field, Strict

Int = Annotated[int, Strict()]
PosInt = Annotated[int, Strict(), Field(gt=0)]
Lanes = Optional[PosInt]
