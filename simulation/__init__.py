"""Simulation adapters (installed as ``topoae.simulation``): ExaHyPE/GeoClaw/ANUGA export and checks."""
