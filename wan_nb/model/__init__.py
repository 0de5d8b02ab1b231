"""Model folders, read without loading: JSON and safetensors headers, the component report, the registry.

- :mod:`~wan_nb.model.checkpoint`: JSON and safetensors headers, read by hand (no mmap of weights);
- :mod:`~wan_nb.model.report`: :class:`ComponentInfo` and :class:`ComponentReport`;
- :mod:`~wan_nb.model.components`: :func:`analyze_model_components`;
- :mod:`~wan_nb.model.deep`: the ``deep=True`` check on the meta device;
- :mod:`~wan_nb.model.registry`: the models wan_nb knows and what a folder's configs say;
- :mod:`~wan_nb.model.discovery`: model folders on this machine (siblings, the HF cache).
"""

from __future__ import annotations

from wan_nb.model.checkpoint import CheckpointError
from wan_nb.model.components import analyze_model_components
from wan_nb.model.report import ComponentInfo, ComponentReport, ModelFolderError

__all__ = ["CheckpointError", "ComponentInfo", "ComponentReport", "ModelFolderError", "analyze_model_components"]
