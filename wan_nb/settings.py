"""Generation settings: what a pipeline call asks for, as plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from wan_nb._records import json_native

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1}


@dataclass(frozen=True)
class GenerationSettings:
    """The arguments of one pipeline call that decide its memory and time.

    ``guidance_scale > 1`` means classifier-free guidance, which doubles the batch the
    transformer sees (diffusers runs the conditional and unconditional passes).
    """

    height: int = 480
    width: int = 832
    num_frames: int = 81
    num_inference_steps: int = 50
    guidance_scale: float = 5.0
    dtype: str = "bfloat16"
    batch_size: int = 1
    max_sequence_length: int = 512

    def __post_init__(self) -> None:
        for name in ("height", "width", "num_frames", "num_inference_steps", "batch_size", "max_sequence_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"`dtype` must be one of {', '.join(DTYPE_BYTES)}, got {self.dtype!r}.")

    @property
    def cfg(self) -> bool:
        return self.guidance_scale > 1.0

    @property
    def latent_frames(self) -> int:
        """Frames after the Wan VAE's 4x temporal compression: (frames - 1) / 4 + 1."""
        return (self.num_frames - 1) // 4 + 1

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def replace(self, **changes: Any) -> GenerationSettings:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return json_native(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
