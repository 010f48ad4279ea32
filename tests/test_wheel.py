"""Packaging: the data folders at the top of the checkout (baselines/, runners/, reports/) ship in
the wheel as `artifactbench.data.*` packages, and an install from the wheel alone finds them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
# What the build reads: the package, the data folders it maps, and the project files.
BUILD_INPUTS = ("pyproject.toml", "README.md", "artifactbench", *SETUPTOOLS["package-dir"].values())


def test_every_package_of_the_tree_is_listed() -> None:
    """The packages are listed by hand (setuptools installs a mapped package only when listed),
    so a new package must be added to pyproject.toml or the wheel would leave it out."""
    listed = set(SETUPTOOLS["packages"])
    missing = sorted(set(find_packages(str(ROOT), include=["artifactbench*"])) - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    for package, folder in SETUPTOOLS["package-dir"].items():
        assert package in listed and (ROOT / folder / "__init__.py").is_file(), package


def _expected_files() -> dict[str, Path]:
    """Wheel path -> source file, for every data file the wheel must carry."""
    expected = {}
    mapped = {folder: package for package, folder in SETUPTOOLS["package-dir"].items()}
    for folder, package in mapped.items():
        prefix = package.replace(".", "/")
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                expected[f"{prefix}/{path.relative_to(ROOT / folder).as_posix()}"] = path
    for pattern in ("artifactbench/reports/leaderboard/*.css",
                    "artifactbench/reports/leaderboard/*.js",
                    "artifactbench/data/models/*"):  # fmt: skip
        for path in sorted(ROOT.glob(pattern)):
            expected[path.relative_to(ROOT).as_posix()] = path
    return expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built offline from a copy of the build inputs, so that no build/ left in the
    checkout can add stale files and the checkout is not written to."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-w", str(tmp / "dist")],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = (tmp / "dist").glob("artifactbench-*.whl")
    return built


def test_the_wheel_carries_the_data_folders(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        expected = _expected_files()
        assert sorted(set(expected) - names) == []
        for name, path in expected.items():
            assert archive.read(name) == path.read_bytes(), name
    # What each folder is for, named so that an empty glob cannot pass.
    for name in ("artifactbench/data/baselines/artifactnet.yaml",
                 "artifactbench/data/baselines/fakeprint.yaml",
                 "artifactbench/data/runners/demo.yaml",
                 "artifactbench/data/runners/table-vi-artifactbench.yaml",
                 "artifactbench/data/reports/published.csv",
                 "artifactbench/data/reports/demo/leaderboard.html",
                 "artifactbench/data/reports/demo/metrics.json",
                 "artifactbench/data/models/artifactnet_open.pt",
                 "artifactbench/data/models/artifactnet-open-demo.yaml"):  # fmt: skip
        assert name in names, name
    assert not [n for n in names if n.startswith(("baselines/", "runners/", "reports/"))]
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "artifactbench").rglob("*.py")}
    assert sorted(sources - names) == []


def test_an_install_from_the_wheel_finds_cards_recipes_and_figures(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
         str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    probe = (
        "import json\n"
        "from artifactbench.detectors.registry import card_dirs, cards\n"
        "from artifactbench.recipes import RECIPES, load_recipe\n"
        "from artifactbench.reports.paper_published import load_published\n"
        "from artifactbench.assets import data_folder\n"
        "load_recipe('demo')\n"
        "print(json.dumps({'dirs': [str(d) for d in card_dirs()], 'cards': sorted(cards()),\n"
        "    'recipes': sorted(RECIPES), 'published': len(load_published()),\n"
        "    'demo': sorted(p.name for p in (data_folder('reports') / 'demo').iterdir())}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target), "ARTIFACTBENCH_CARDS": ""}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    assert all(Path(d).is_relative_to(target) for d in found["dirs"])
    assert found["cards"] == sorted(
        [p.stem for p in (ROOT / "baselines").glob("*.yaml")] + ["artifactnet-open-demo"]
    )
    assert found["recipes"] == sorted(p.stem for p in (ROOT / "runners").glob("*.yaml"))
    assert found["published"] == len((ROOT / "reports/published.csv").read_text().splitlines()) - 1
    assert "leaderboard.html" in found["demo"]
