"""Data: keypoints, heatmaps, the puppets renderer, edges, the input pipeline, poses, framing."""

from ptx import bundled as _bundled

# ``import data_builders`` (the repository's builders, as ptx.data.pipeline imports them) also works from an
# installed wheel, which carries them as ptx.data_builders.
_bundled.expose_data_builders()
