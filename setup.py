"""The one import package `bench`: the project's top-level folders install as its subpackages.

`tasks/`, `methods/`, `reports/` and `grids/` stay at the top of the repository (the project's
layout) but are installed as `bench.tasks`, `bench.methods`, `bench.reports`, `bench.grids`, for
editable installs and wheels alike, so that nothing but `bench` lands in site-packages. Their
subpackages (one per method) are found here rather than listed, so adding one needs no edit.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "bench": "bench",
    "bench.tasks": "tasks",
    "bench.methods": "methods",
    "bench.reports": "reports",
    "bench.grids": "grids",
}

setup(
    package_dir=FOLDERS,
    packages=[
        *FOLDERS,
        *(f"{name}.{sub}" for name, folder in FOLDERS.items() for sub in find_packages(folder)),
    ],
)
