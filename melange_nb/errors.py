"""One base error for the project, with narrow subclasses (after papermill's exceptions.py).

Every message is one line that names the offending field and says how to fix it; the CLI prints
it and exits 2.
"""


class MelangeError(Exception):
    """Base class for every error melange-nb raises on purpose."""


class InputError(MelangeError, ValueError):
    """Bad user input: a file, a field or a parameter. `field` names what to fix."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self):       # rebuilt from (field, message) in the process that receives it (a pool, Ray)
        return type(self), (self.field, self.message)


class DatasetError(MelangeError):
    """A dataset or tokenizer could not be loaded (unknown, offline, gated, empty)."""


class SweepInterrupted(MelangeError):
    """Ctrl-C: the sweep stopped; finished points are recorded and a re-run resumes (the CLI exits 130)."""


class MissingExtra(MelangeError):
    """An optional part's packages are not installed: names the pyproject extra that installs them."""

    def __init__(self, what: str, package: str, extra: str, why: str = ""):
        self._args = (what, package, extra, why)
        super().__init__(f"{what} needs {package}, which is not installed{why}; install it with "
                         f"pip install 'melange-nb[{extra}]' (make install installs every extra)")

    def __reduce__(self):
        return type(self), self._args
