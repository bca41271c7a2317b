"""DICOM in and out: receive series from a PACS (C-STORE, STOW-RS) and give results back as DICOM.

Nothing here knows Flask: the app and the server entry points hand it settings, the image store and
callbacks. Modules: settings (checks made before workers start), sources (incomplete input headers
made usable), report and keyimages (the results, written with highdicom), results (what both share),
instances (is a received instance whole), collector (instances to objects, series completion), scp
(the C-STORE listener), node (which process listens), dicomweb (STOW-RS bodies and answers), send
(results to the PACS).
"""
