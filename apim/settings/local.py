"""Local development on embedded defaults (``make run``)."""

from .base import *
from .env import env

DEBUG = env.get_bool("DEBUG", True)
# The demo echo upstream and everything a developer runs live on loopback.
APIM_ALLOW_PRIVATE_TARGETS = env.get_bool("APIM_ALLOW_PRIVATE_TARGETS", True)
