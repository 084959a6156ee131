"""Sheets: layout in millimetres, fiducial markers, cells, PDF writing (the print stage is
:mod:`physical.stages.printing`)."""
