"""Structures: bulks, slabs, sites, adsorbates, placements and gas references.

Public API (import from the submodules):

- `catscreen.build.enumerate`:
  `EnumerateSettings` (pydantic: bulks, miller, max_index, min_slab_size, vacuum, min_ab,
  adsorbates, custom_adsorbates, placement, n_random, seed, include_clean),
  `enumerate_configurations(settings) -> list[Atoms]` (manifest row in each atoms.info),
  `enumerate_slabs(settings) -> list[SlabTermination]`,
  `manifest(images) -> DataFrame` (exactly schema.MANIFEST_COLUMNS),
  `write_configurations(images, out_dir, settings) -> (extxyz path, parquet path)`,
  `read_manifest(path or folder) -> (DataFrame, list[Atoms])`,
  `read_configurations(extxyz path) -> list[Atoms]` (info text keys kept as text).
- `catscreen.build.bulks`: `Bulk`, `load_bulks(specs)`, `library_bulk(name)`, `bulk_library()`.
- `catscreen.build.slabs`: `SlabTermination`, `make_slabs(bulk, miller, min_slab_size, vacuum,
  min_ab)`, `distinct_millers(bulk, max_index)`, `parse_miller(text)`, `tag_and_fix(atoms, d_nn)`.
- `catscreen.build.sites`: `Site`, `find_sites(slab_atoms, d_nn, unique=True, repeat=(1, 1))`
  (`repeat`: `SlabTermination.repeat`, the in-plane repeat of the slab's cell), `SITE_TYPES`.
- `catscreen.build.adsorbates`: `Adsorbate`, `adsorbate_library()`, `get_adsorbate(name)`,
  `load_custom_adsorbate("file.xyz:0[,1]")`.
- `catscreen.build.placements`: `Orientation`, `place(slab, site, adsorbate, orientation)`,
  `min_distance_ratio(slab, molecule)`, `MIN_DISTANCE_FACTOR`.
- `catscreen.build.gas`: gas-phase reference molecules.
"""
