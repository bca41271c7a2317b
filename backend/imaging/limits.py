"""What one decode may cost, checked from the header before any pixel is allocated."""
from dataclasses import dataclass

from backend.errors import ApiError


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 16_777_216  # 4096 x 4096, far above any CT slice
    budget_bytes: int = 64 * 2**20  # decoded samples (all frames held) or an inflated DICOM data set

    @classmethod
    def from_config(cls, config):
        return cls(config["MAX_PIXELS"], config["DECODE_BUDGET_MB"] * 2**20)

    def check(self, width: int, height: int, bytes_per_pixel: float, frames: int = 1):
        """Refuse with 413 what exceeds MAX_PIXELS (one frame) or the byte budget (all frames)."""
        pixels = width * height
        if pixels > self.max_pixels:
            raise ApiError(413, "too_many_pixels",
                           f"The image has {pixels} pixels; this service accepts at most {self.max_pixels}.")
        self.check_bytes(pixels * bytes_per_pixel * frames)

    def check_bytes(self, size: float):
        if size > self.budget_bytes:
            raise ApiError(413, "decoded_too_large",
                           f"Decoded, the image would take more than the {self.budget_bytes // 2**20} MiB "
                           "this service allows for one upload.")
