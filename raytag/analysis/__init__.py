"""The study's tables and figures from a results table: ``raytag report`` (no Ray, no torch).

- :mod:`stats` - the statistics (paired agreement, Bland-Altman limits, Welch, Bonferroni);
- :mod:`tables` - results (+ reference, + groups) -> the paper's tables as rows of dicts;
- :mod:`figures` - Bland-Altman, distributions, curves and QC panels (PNG bytes);
- :mod:`report` - one self-contained HTML page plus CSV and JSON tables.
"""
