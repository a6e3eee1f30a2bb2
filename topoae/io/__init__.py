"""Reading (and writing) elevation grids: GEBCO NetCDF and what else real users have."""

from topoae.io.bbox import parse_bbox, subset_bbox
from topoae.io.grid import DEFAULT_CHUNK, open_grid, pick_variable

__all__ = ["DEFAULT_CHUNK", "open_grid", "parse_bbox", "pick_variable", "subset_bbox"]
