"""What the Structured Report and the key images share: who made them, and their bytes.

Both are "processing equipment" output of the model that answered (its name and version as the
Contributing Equipment), in series numbers a PACS shows after the scanner's own.
"""

import io
import logging

from highdicom import ContributingEquipment
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

MANUFACTURER = "CT analysis service"
SR_SERIES_NUMBER = 9901
KEY_IMAGES_SERIES_NUMBER = 9902
DESCRIPTION = "COVID-19 assessment (research use only)"

logging.getLogger("highdicom").setLevel(logging.WARNING)  # it logs every module it copies, for every instance


def equipment(model: dict) -> ContributingEquipment:
    """The model as Contributing Equipment: what processed the series into these results."""
    return ContributingEquipment(
        manufacturer=MANUFACTURER,
        purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=model["name"],
        software_versions=model["version"],
        contribution_description="Slice classification (COVID-19) and class-activation heatmaps",
    )


def encode(ds: Dataset) -> bytes:
    """The instance as a DICOM file (PS3.10: preamble, file meta), as kept, served and sent."""
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()
