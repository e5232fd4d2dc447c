"""Export: curated rows -> an SFT dataset folder (formats, leakage-safe splits, dataset card) -> the Hugging Face Hub.

Consumes a run folder or a stage folder of curate rows; produces an artifact folder (``artifact.export``) that
``datasets.load_dataset`` loads and ``hub.push`` uploads, and short views of it (``summary.inspect_folder``).
Modules: ``formats`` (one pure function per SFT format, with inverses), ``splits`` (seeded group-aware splits),
``licenses`` (the licence of a mix), ``card`` (README.md), ``artifact`` (the folder), ``hub`` (the upload),
``summary`` (``curate inspect``).
"""
