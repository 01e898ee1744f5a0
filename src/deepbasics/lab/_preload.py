"""Imported once by the lab's fork server, never by the main process: what every worker needs, loaded once.

Forked workers inherit these modules already imported, which saves one to two seconds per experiment (torch,
scipy.stats, and matplotlib's pyplot on the non-interactive Agg backend). Selecting Agg here is safe because only the
server imports this module; the user's own process keeps its matplotlib backend.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot
import numpy  # noqa: F401
import scipy.stats  # noqa: F401  (the independent reference of many experiments; slow to import)
import torch  # noqa: F401

from deepbasics.lab import _worker  # noqa: F401
