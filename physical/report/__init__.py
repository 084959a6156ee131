"""The report's parts: tables, plots, the HTML page, the experiments' sections, comparing runs
(the report stage itself is :mod:`physical.stages.report`)."""
