"""Settings for load runs: the platform's, plus a bare view to compare the SOAP path against."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
