"""The training-data layer: from elevation grids to the patches a model sees.

- :mod:`topoae.data.normalise` — the invertible map of metres to the model's [0, 1] range
  (:class:`~topoae.data.normalise.Normalisation`);
- :mod:`topoae.data.splits` — leak-free train/val/test splits by spatial blocks;
- :mod:`topoae.data.tiling` — cut grids into a Zarr v3 patch store (``topoae tile``);
- :mod:`topoae.data.dataset` — a torch ``Dataset`` and chunk-wise sampler over that store.

Nothing is imported here: ``import topoae.data`` stays cheap (the CLI is lazy, and the
dataset module imports torch). Import the modules themselves.
"""
