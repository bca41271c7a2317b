"""What one decode may cost, checked from the header before any pixel is allocated."""
from dataclasses import dataclass

from backend.errors import InvalidInput


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 16_777_216  # 4096 x 4096, far above any CT slice
    budget_bytes: int = 64 * 2**20  # decoded samples (all frames held) or an inflated DICOM data set

    @classmethod
    def from_config(cls, config):
        return cls(config["MAX_PIXELS"], config["DECODE_BUDGET_MB"] * 2**20)

    def check(self, width: int, height: int, bytes_per_pixel: float, frames: int = 1):
        """Refuse (InvalidInput) what exceeds MAX_PIXELS (one frame) or the byte budget (all frames)."""
        pixels = width * height
        if pixels > self.max_pixels:
            raise InvalidInput("too_many_pixels", f"It has {pixels}; the limit is {self.max_pixels}.")
        self.check_bytes(pixels * bytes_per_pixel * frames)

    def check_bytes(self, size: float):
        if size > self.budget_bytes:
            raise InvalidInput("decoded_too_large", f"The limit is {self.budget_bytes // 2**20} MiB.")
