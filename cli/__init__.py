"""The ``topoae`` command line: a thin layer over the library (installed as ``topoae.cli``)."""
