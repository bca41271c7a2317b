"""The study's answer as a Comprehensive 3D SR holding a TID 1500 measurement report (written with highdicom).

One measurement group: the study score as a NUM whose concept names COVID-19 (UCUM unit "1"), with
the key slices as its source images; the label as a coded qualitative evaluation (COVID-19 present
or absent); the model as the algorithm (name, version, and the aggregation rule and threshold as its
parameters). The study's findings and the research-use caution are TEXT items. There is no standard
code for "probability of COVID-19", so the score's concept is from this service's private scheme
(99CTA), declared in the Coding Scheme Identification Sequence.
"""

import warnings

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from backend.analysis.findings import CAUTION
from backend.dicom import sources
from backend.dicom.results import DESCRIPTION, MANUFACTURER, SR_SERIES_NUMBER, equipment

SCHEME = CodingSchemeIdentificationItem(designator="99CTA", name="CT analysis service concepts")
SCORE = hd.sr.CodedConcept("P-COVID19", "99CTA", "Probability of COVID-19")
COVID_19 = hd.sr.CodedConcept("840539006", "SCT", "COVID-19")
CT_OF_CHEST = hd.sr.CodedConcept("169069000", "SCT", "CT of chest")
QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")

# highdicom warns about person names without a caret; real series have them (e.g. "Lung_Dx-A0002"), and they are
# copied as they are.
warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name", category=UserWarning)


def structured_report(study: dict, headers: dict[int, Dataset]) -> hd.sr.Comprehensive3DSR:
    """The SR of a finished `study` (the study document); `headers` maps slice indexes to their DICOM headers
    and holds at least one slice, and every key slice that the SR should reference."""
    entries = {entry["index"]: entry for entry in study.get("slices", [])}

    def source(index):
        return sources.source_image(headers[index], entries.get(index, {"index": index}), study)

    keys = [source(key["index"]) for key in study.get("key_slices", []) if key["index"] in headers]
    evidence = keys or [source(min(headers))]
    model, prediction = study["model"], study["prediction"]
    algorithm = hd.sr.AlgorithmIdentification(
        name=model["name"],
        version=model["version"],
        parameters=[f"Aggregation: {prediction['aggregation']}", f"Threshold: {prediction['threshold']}"],
    )
    measurements = []
    if prediction.get("score") is not None:
        measurements.append(
            hd.sr.Measurement(
                name=SCORE,
                value=float(prediction["score"]),
                unit=codes.UCUM.NoUnits,
                algorithm_id=algorithm,
                referenced_images=[hd.sr.SourceImageForMeasurement(ds.SOPClassUID, ds.SOPInstanceUID) for ds in keys],
            )
        )
    present = codes.SCT.Present if prediction["label"] == "COVID" else codes.SCT.Absent
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=sources.uid(study["id"], "tracking"), identifier="COVID-19 assessment of the series"
        ),
        finding_type=COVID_19,
        algorithm_id=algorithm,
        measurements=measurements or None,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(COVID_19, present)],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=sources.uid(model["name"], model["version"]),
            name=model["name"],
            manufacturer_name=MANUFACTURER,
            model_name=model["name"],
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CT_OF_CHEST,
        imaging_measurements=[group],
    )
    report[0].ContentSequence.append(_texts(study))
    return hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=sources.uid(study["id"], "sr-series"),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=sources.uid(study["id"], "sr"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=DESCRIPTION,
        manufacturer_model_name=model["name"],
        software_versions=model["version"],
        contributing_equipment=[equipment(model)],
        coding_schemes=[SCHEME],
    )


def _texts(study: dict) -> hd.sr.ContainerContentItem:
    """TID 1500's Qualitative Evaluations container: the study's findings, then the research-use caution."""
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    container.ContentSequence = hd.sr.ContentSequence()
    texts = [(codes.DCM.Finding, text) for text in study.get("findings", [])] + [(codes.DCM.Comment, CAUTION)]
    for name, text in texts:
        container.ContentSequence.append(
            hd.sr.TextContentItem(name=name, value=text, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        )
    return container
