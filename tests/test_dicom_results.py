"""The results as DICOM, read back with pydicom and highdicom field by field: the SR (TID 1500) and the key images.

Inputs are the real series' headers, whole and with what real series often lack (PatientName,
StudyDate, SOPInstanceUID, a usable PatientSex or character set) taken out.
"""

import copy
import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.sr.codedict import codes
from pydicom.uid import UID, Comprehensive3DSRStorage, ComprehensiveSRStorage, SecondaryCaptureImageStorage

from backend.analysis.findings import CAUTION
from backend.dicom import keyimages, report, results
from tests.fixtures.data import dicom_file
from tests.fixtures.dicom_study import AGGREGATION, MODEL, headers, overlay, study_document

PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
)


def read_back(ds) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(results.encode(ds)))


def measurement_group(sr: pydicom.Dataset):
    document = hd.sr.Comprehensive3DSR.from_dataset(sr)
    groups = document.content.get_image_measurement_groups()
    assert len(groups) == 1
    return document, groups[0]


def texts(sr: pydicom.Dataset) -> dict[str, list[str]]:
    found = {}
    for item in hd.sr.utils.find_content_items(sr, value_type=hd.sr.ValueTypeValues.TEXT, recursive=True):
        found.setdefault(item.name.meaning, []).append(item.value)
    return found


@pytest.fixture(scope="module")
def series():
    return headers()


def test_the_sr_carries_the_study_answer_field_by_field(series):
    study = study_document(series)
    sr = read_back(report.structured_report(study, series))
    source = series[0]

    assert sr.SOPClassUID == Comprehensive3DSRStorage and sr.Modality == "SR"
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.SeriesInstanceUID not in {ds.SeriesInstanceUID for ds in series.values()}
    for keyword in PATIENT_STUDY:
        assert sr.get(keyword) == source.get(keyword), keyword
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"

    document, group = measurement_group(sr)
    [score] = group.get_measurements()
    assert score.value == pytest.approx(study["prediction"]["score"])
    assert "COVID-19" in score.name.meaning
    assert (score.unit.value, score.unit.scheme_designator) == ("1", "UCUM")
    key_uids = [series[key["index"]].SOPInstanceUID for key in study["key_slices"]]
    assert [image.referenced_sop_instance_uid for image in score.referenced_images] == key_uids
    evidence = document.get_evidence()
    assert {uid for _, _, uid, _ in evidence} == set(key_uids)
    assert {series_uid for _, series_uid, _, _ in evidence} == {source.SeriesInstanceUID}

    [evaluation] = group.get_qualitative_evaluations()
    assert evaluation.name.value == "840539006" and evaluation.value == codes.SCT.Absent
    algorithm = texts(group[0])  # TID 4019 in the group (and again in the measurement)
    assert (algorithm["Algorithm Name"], algorithm["Algorithm Version"]) == (
        [MODEL["name"]] * 2,
        [MODEL["version"]] * 2,
    )
    assert algorithm["Algorithm Parameters"][:2] == [f"Aggregation: {AGGREGATION}", "Threshold: 0.36"]
    equipment = {item.Manufacturer: item for item in sr.ContributingEquipmentSequence}
    assert equipment[source.Manufacturer].PurposeOfReferenceCodeSequence[0].CodeMeaning == "Acquisition Equipment"
    equipment = equipment[results.MANUFACTURER]
    assert (equipment.ManufacturerModelName, equipment.SoftwareVersions) == (MODEL["name"], MODEL["version"])
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == codes.DCM.ProcessingEquipment.value
    assert texts(sr)["Comment"] == [CAUTION]
    assert texts(sr)["Finding"] == study["findings"]
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99CTA"


def test_a_covid_study_is_a_present_finding(series):
    sr = read_back(report.structured_report(study_document(series, label="COVID", score=0.91), series))
    _, group = measurement_group(sr)
    assert group.get_measurements()[0].value == pytest.approx(0.91)
    assert group.get_qualitative_evaluations()[0].value == codes.SCT.Present


def test_writing_again_gives_the_same_uids(series):
    study = study_document(series)
    first, second = (read_back(report.structured_report(study, series)) for _ in range(2))
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (second.SOPInstanceUID, second.SeriesInstanceUID)
    other = read_back(report.structured_report(study_document(series, study_id="st-test-2"), series))
    assert other.SOPInstanceUID != first.SOPInstanceUID


def test_key_images_are_rgb_secondary_captures_of_the_key_slices(series):
    study = study_document(series)
    pictures = {key["index"]: overlay(key["index"]) for key in study["key_slices"]}
    images = [read_back(image) for image in keyimages.key_images(study, series, pictures)]

    assert len(images) == len(study["key_slices"])
    assert len({image.SeriesInstanceUID for image in images}) == 1
    assert len({image.SOPInstanceUID for image in images}) == len(images)
    for rank, (image, key) in enumerate(zip(images, study["key_slices"], strict=True), 1):
        source = series[key["index"]]
        assert image.SOPClassUID == SecondaryCaptureImageStorage and image.InstanceNumber == rank
        assert image.StudyInstanceUID == source.StudyInstanceUID
        assert image.SeriesInstanceUID != source.SeriesInstanceUID
        for keyword in PATIENT_STUDY:
            assert image.get(keyword) == source.get(keyword), keyword
        [reference] = image.SourceImageSequence
        assert (reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID) == (
            source.SOPClassUID,
            source.SOPInstanceUID,
        )
        assert image.PhotometricInterpretation == "RGB" and image.SamplesPerPixel == 3
        expected = np.asarray(Image.open(io.BytesIO(pictures[key["index"]])).convert("RGB"))
        assert np.array_equal(image.pixel_array, expected)  # PNG in, the very pixels out
        assert image.PatientOrientation == ["L", "P"]  # the series is axial, ImageOrientationPatient 1,0,0,0,1,0
        assert "LossyImageCompression" not in image
        assert MODEL["name"] in [item.get("ManufacturerModelName") for item in image.ContributingEquipmentSequence]
        assert np.array_equal(hd.imread(io.BytesIO(results.encode(image))).get_frame(1), expected)


def test_a_jpeg_overlay_is_marked_lossy(series):
    study = study_document(series, key_indexes=(12,))
    [image] = keyimages.key_images(study, series, {12: overlay(12, fmt="JPEG")})
    image = read_back(image)
    assert (image.LossyImageCompression, image.LossyImageCompressionMethod) == ("01", "ISO_10918_1")
    assert image.pixel_array.shape == (400, 400, 3)


def strip(ds: pydicom.Dataset, *keywords) -> pydicom.Dataset:
    ds = copy.deepcopy(ds)
    for keyword in keywords:
        if keyword in ds:
            del ds[keyword]
    return ds


@pytest.mark.parametrize(
    "missing",
    [
        ("PatientName", "StudyDate"),
        (
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientSex",
            "StudyDate",
            "StudyTime",
            "AccessionNumber",
            "StudyID",
            "ReferringPhysicianName",
            "SOPInstanceUID",
            "ImageOrientationPatient",
            "SpecificCharacterSet",
        ),
        ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "SOPClassUID", "Modality"),
    ],
)
def test_incomplete_input_is_filled_as_the_standard_allows(series, missing):
    """Type 2 attributes present and empty, type 1 UIDs generated and consistent between the SR and the images."""
    incomplete = {index: strip(ds, *missing) for index, ds in series.items()}
    study = study_document(incomplete)
    if "SOPInstanceUID" in missing:
        assert all(entry["sop_instance_uid"] == "" for entry in study["slices"])  # as issue 24's slices list them
    sr = read_back(report.structured_report(study, incomplete))
    images = [
        read_back(image)
        for image in keyimages.key_images(
            study, incomplete, {key["index"]: overlay(key["index"]) for key in study["key_slices"]}
        )
    ]

    for instance in (sr, *images):
        for keyword in PATIENT_STUDY:
            assert keyword in instance, keyword
            if keyword in missing:
                assert instance[keyword].value in ("", None) or keyword == "StudyInstanceUID", keyword
        assert UID(instance.StudyInstanceUID).is_valid and UID(instance.SOPInstanceUID).is_valid
    referenced = [
        image.referenced_sop_instance_uid for image in measurement_group(sr)[1].get_measurements()[0].referenced_images
    ]
    assert referenced == [image.SourceImageSequence[0].ReferencedSOPInstanceUID for image in images]
    assert all(UID(uid).is_valid for uid in referenced)
    assert len({image.StudyInstanceUID for image in images} | {sr.StudyInstanceUID}) == 1
    if "SOPInstanceUID" not in missing:
        assert referenced == [series[key["index"]].SOPInstanceUID for key in study["key_slices"]]


def test_values_highdicom_refuses_are_left_empty(series):
    odd = copy.deepcopy(series)
    for ds in odd.values():
        ds.PatientSex, ds.StudyDate, ds.PatientBirthDate = "U", "2007XX25", "19"
        ds.SpecificCharacterSet = "ISO_IR 999"
    sr = read_back(report.structured_report(study_document(odd), odd))
    assert (sr.PatientSex, sr.StudyDate, sr.PatientBirthDate) == ("", "", "")
    assert sr.SpecificCharacterSet == "ISO_IR 192" and sr.PatientName == series[0].PatientName


def test_a_pydicom_data_ct_with_a_latin1_name():
    header = pydicom.dcmread(dicom_file("CT_small.dcm"), stop_before_pixels=True)
    study = study_document({0: header}, key_indexes=(0,))
    sr = read_back(report.structured_report(study, {0: header}))
    [image] = [read_back(image) for image in keyimages.key_images(study, {0: header}, {0: overlay(0)})]
    assert sr.PatientName == image.PatientName == header.PatientName
    assert sr.SpecificCharacterSet == header.SpecificCharacterSet
    assert image.SourceImageSequence[0].ReferencedSOPInstanceUID == header.SOPInstanceUID


def test_the_sr_is_a_comprehensive_sr_that_plain_readers_can_walk(series):
    """Viewers without 3D SR support read the tree too: every item has a concept name and a value type."""
    sr = read_back(report.structured_report(study_document(series), series))
    assert sr.SOPClassUID != ComprehensiveSRStorage  # 3D: the IOD the issue asks for

    def walk(items):
        for item in items:
            assert item.ValueType and item.ConceptNameCodeSequence[0].CodeMeaning
            yield item
            yield from walk(item.get("ContentSequence", []))

    assert sum(1 for _ in walk(sr.ContentSequence)) > 10
