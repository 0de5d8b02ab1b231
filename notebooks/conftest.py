"""nbval's environment for the notebooks: the same one ``notebooks/_build.py`` stores outputs with.

The kernels nbval starts inherit this process's environment, so these settings reach them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Live tables print as text (a widget's text form and model ids differ between runs).
os.environ["WAN_NB_NO_WIDGETS"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tiny models' ops are small: a second thread costs more in synchronisation than it saves,
# and on a shared 2-core machine it oversubscribes. A user's own setting wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# One build of each tiny pipeline for all four notebooks (each kernel would build its own).
os.environ.setdefault("WAN_NB_FIXTURE_CACHE", str(Path(tempfile.gettempdir()) / "wan_nb_notebook_fixtures"))
# Recovery attempts are recorded; the notebooks' runs go to a temporary file, not the home.
os.environ["WAN_NB_HISTORY"] = str(Path(tempfile.mkdtemp(prefix="wan_nb_history_")) / "history.jsonl")
