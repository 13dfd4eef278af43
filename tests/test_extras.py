"""Optional parts (pyproject extras) name the extra to install, in one line, when their import is missing;
`make install` installs every extra."""
import re
import sys
import tomllib

import pytest

from melange_nb.config import PROJECT_ROOT
from melange_nb.errors import MelangeError


def test_make_install_installs_every_extra():
    extras = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installed = re.search(r"^EXTRAS := (.+)$", (PROJECT_ROOT / "Makefile").read_text(), re.M).group(1).split(",")
    assert sorted(installed) == sorted(extras) and {"explore", "predict", "bench"} <= set(extras)


def test_explorer_without_ipywidgets_names_the_explore_extra(monkeypatch):
    from melange_nb.explore import build_explorer

    monkeypatch.setitem(sys.modules, "ipywidgets", None)       # what an install without the extra looks like
    with pytest.raises(MelangeError, match=r"^the explorer needs ipywidgets, which is not installed; .*"
                                           r"pip install 'melange-nb\[explore\]'") as info:
        build_explorer(rate=4.0)
    assert "\n" not in str(info.value)
