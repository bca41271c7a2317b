"""The serving pass compiled by TorchScript, and kept on disk so that the next process loads it instead.

Compiling (script, freeze, the executor's first runs) is about a quarter of a process's start: every
gunicorn worker, `python backend/app.py`, each `python -m backend analyze`. Loading the saved pass
takes a tenth of that. A saved pass is named by a digest of all it is made from (the weights file,
the torch version, the source of the modules that define the pass), so a change to any of them
makes a new one and an old one is never used for it. The folder should be the service's own
(DATA_DIR/model-cache by default): TorchScript files are code, loaded without further checks.
"""

import contextlib
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch

from backend.ml.preprocess import INPUT_SIZE

log = logging.getLogger(__name__)

# The modules whose code the compiled pass is made of (the pass, the networks, the input check's branch, the size).
SOURCES = tuple(
    Path(__file__).with_name(name) for name in ("classifier.py", "network.py", "inputcheck.py", "preprocess.py")
)


def compiled(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """`module` compiled by TorchScript and frozen: the same numbers, the whole pass run in C++ without the GIL.

    Run op by op from Python, a pass waits for the GIL between its operations whenever another
    thread holds it (the slice's pictures drawn meanwhile, other requests in the worker); compiled,
    it is about 10 % faster alone and keeps its speed beside them. TorchScript is deprecated in favour
    of torch.compile and torch.export, but torch.compile needs a C++ compiler at run time (the Docker
    image has none) and an exported program runs op by op from Python again: revisit when the torch
    pin moves.
    """
    with torch.no_grad(), _jit_deprecation_ignored():
        return _warmed(torch.jit.freeze(torch.jit.script(module.eval())))


def digest(weights_path) -> str:
    """What names the compiled pass of these weights: any change to what it is made of changes it."""
    made_of = hashlib.sha256(torch.__version__.encode())
    for file in (Path(weights_path), *SOURCES):
        made_of.update(file.read_bytes())
    return made_of.hexdigest()[:32]


def cached(module: torch.nn.Module, folder, name: str) -> torch.jit.ScriptModule:
    """`compiled(module)`, loaded from `folder` where an earlier process saved it under `name` (`digest`), and
    saved there otherwise. A file that does not load (cut short) is made again; a folder this process cannot
    write to only costs the compile."""
    file = Path(folder) / f"forward-{name}.pt"
    if file.is_file():
        try:
            with _jit_deprecation_ignored():
                loaded = _warmed(torch.jit.load(file, map_location="cpu"))
            log.info("compiled model loaded from %s", file)
            return loaded
        except (RuntimeError, ValueError, OSError) as exc:
            log.warning("the compiled model at %s does not load (%s); compiling it again", file, exc)
    made = compiled(module)
    temp = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.NamedTemporaryFile(dir=file.parent, prefix=".incoming-", delete=False) as temp,
            _jit_deprecation_ignored(),
        ):
            torch.jit.save(made, temp)
        os.replace(temp.name, file)  # whole or not at all, for processes starting beside this one
        log.info("compiled model kept in %s", file)
    except OSError as exc:
        log.warning("cannot keep the compiled model in %s (%s); each start compiles it", folder, exc)
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp.name)
    return made


def _warmed(frozen):
    """The executor optimises the graph on its first calls: here, not in a request."""
    example = torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        for _ in range(2):
            frozen(example)
    return frozen


@contextlib.contextmanager
def _jit_deprecation_ignored():
    """TorchScript warns that it is deprecated on every use (see `compiled`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        yield
