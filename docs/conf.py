"""Sphinx configuration of torchscope's documentation: the API reference generated from the
docstrings (autodoc, Google style through napoleon), the porting guide and the architecture
notes (Markdown, through myst-parser). Build: ``pip install -e ".[docs]"`` then
``sphinx-build -W -b html docs docs/_build/html`` (CI does, warnings as errors)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from torchscope import __version__

project = "torchscope"
author = "The torchscope authors"
copyright = "2026, The torchscope authors"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing"]  # links to files of the repository, not pages

html_theme = "alabaster"
html_static_path: list[str] = []
