"""The key slices with their heatmaps as Secondary Capture images (RGB), each referencing its source slice.

The picture is the study's kept heatmap overlay of the slice (the class-activation map blended over
the windowed slice), as the dashboard shows it. It may have been cropped and scaled from the slice,
so no Pixel Spacing is claimed; the orientation letters come from the slice's ImageOrientationPatient
(axial "L", "P" when it has none). An overlay kept as JPEG is marked lossy, as the standard asks.
"""

import io

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from backend.dicom import sources
from backend.dicom.results import DESCRIPTION, KEY_IMAGES_SERIES_NUMBER, MANUFACTURER, equipment

AXES = (("L", "R"), ("P", "A"), ("H", "F"))  # the patient axes x, y, z: (positive, negative) direction


def key_images(study: dict, headers: dict[int, Dataset], overlays: dict[int, bytes]) -> list[hd.sc.SCImage]:
    """One Secondary Capture per key slice of `study` that has a header and an overlay (image bytes: JPEG, PNG)."""
    entries = {entry["index"]: entry for entry in study.get("slices", [])}
    model = study["model"]
    images = []
    for rank, key in enumerate(study.get("key_slices", []), 1):
        index = key["index"]
        if index not in headers or index not in overlays:
            continue
        source = sources.source_image(headers[index], entries.get(index, {"index": index}), study)
        picture = Image.open(io.BytesIO(overlays[index]))
        image = hd.sc.SCImage(
            pixel_array=np.asarray(picture.convert("RGB")),
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            patient_orientation=_orientation(source),
            study_instance_uid=source.StudyInstanceUID,
            series_instance_uid=sources.uid(study["id"], "key-images"),
            series_number=KEY_IMAGES_SERIES_NUMBER,
            sop_instance_uid=sources.uid(study["id"], "key-image", index),
            instance_number=rank,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=model["name"],
            software_versions=model["version"],
            series_description=f"Key images: {DESCRIPTION}",
            contributing_equipment=[equipment(model)],
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
        image.copy_patient_and_study_information(source)
        image.SourceImageSequence = [_reference(source)]
        image.DerivationDescription = (
            f"Class-activation heatmap of {model['name']} {model['version']} over slice "
            f"{index}, P(COVID-19) {key['probability']:.3f}"
        )[:1024]
        image.ImageComments = f"Key slice {index} of the series; research use only, not for diagnosis."
        image.BurnedInAnnotation = "NO"
        if picture.format == "JPEG":
            image.LossyImageCompression = "01"
            image.LossyImageCompressionMethod = "ISO_10918_1"
        images.append(image)
    return images


def _reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.SOPClassUID
    item.ReferencedSOPInstanceUID = source.SOPInstanceUID
    item.PurposeOfReferenceCodeSequence = [
        hd.sr.CodedConcept.from_code(codes.DCM.SourceImageForImageProcessingOperation)
    ]
    return item


def _orientation(source: Dataset) -> tuple[str, str]:
    """Row and column directions as patient orientation letters, from the slice's direction cosines."""
    try:
        cosines = [float(value) for value in source.ImageOrientationPatient]
        if len(cosines) != 6 or not all(np.isfinite(cosines)):
            raise ValueError
    except (AttributeError, TypeError, ValueError):
        return "L", "P"
    return _letter(cosines[:3]), _letter(cosines[3:])


def _letter(vector) -> str:
    axis = int(np.argmax(np.abs(vector)))
    return AXES[axis][0] if vector[axis] > 0 else AXES[axis][1]
