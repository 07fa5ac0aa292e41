"""Versions: the distribution's, and the API version plugins declare compatibility with.

``API_VERSION`` follows semantic versioning of the public API and the hookspecs:
a minor bump adds, a major bump removes or changes. Plugins declare the range they
support in their manifest's ``core_api``.
"""

from __future__ import annotations

__version__ = "0.1.0"
API_VERSION = "1.2"
