"""``curate view``: a local web viewer for a run folder (the funnel, every step's rows kept and rejected, synthesized
pairs with their cited passages, image rows, delivery) and ``--static``, the same summary as one self-contained file.

Modules: ``runfolder`` (what the folder holds, no rows loaded), ``rows`` (a page of rows at a time), ``html`` (an
escaping HTML builder), ``charts`` (inline SVG), ``cite`` (supporting sentences), ``rowcards`` and ``pages`` (the
HTML), ``server`` (the standard library's HTTP server) and ``static`` (the single-file report).
"""

from curate.view.runfolder import NotARun, RunFolder

__all__ = ["NotARun", "RunFolder"]
