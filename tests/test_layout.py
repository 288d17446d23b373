"""The layout keeps scripts runnable: ``python searching/compare.py`` puts ``searching/`` first
on ``sys.path``, so no module or package beside a script may take a standard library name
(a ``searching/random/`` package once hid ``random`` from every import)."""
import sys

from tests.conftest import REPO

SCRIPT_DIRS = ["searching", "evaluation", "bench", "scripts", "api"]


def test_no_folder_of_scripts_shadows_the_standard_library():
    clashes = []
    for top in SCRIPT_DIRS:
        for folder in [REPO / top, *[p for p in (REPO / top).rglob("*") if p.is_dir()]]:
            if "__pycache__" in folder.parts or not any(folder.glob("*.py")):
                continue
            for entry in folder.iterdir():
                name = entry.stem if entry.suffix == ".py" else entry.name
                if (entry.suffix == ".py" or (entry / "__init__.py").exists()) \
                        and name in sys.stdlib_module_names:
                    clashes.append(str(entry.relative_to(REPO)))
    assert clashes == []
